-- The algorithm of each signing key: EdDSA (access tokens and ID tokens, every key so far) or
-- RS256 (ID tokens, the OpenID Connect default).
ALTER TABLE signing_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'EdDSA';
