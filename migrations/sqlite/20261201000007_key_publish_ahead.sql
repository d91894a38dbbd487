-- When a signing key starts to sign: a new key is published in the JWKS first and signs only
-- from here, so verifiers that cache the JWKS have seen it. Null for keys from before: they
-- signed from their creation.
ALTER TABLE signing_keys ADD COLUMN signs_at INTEGER;
