-- Second factors: TOTP, recovery codes and passkeys, and the short-lived challenges of the
-- ceremonies (an MFA login's second step, a passkey registration or login), so that any
-- instance can finish a ceremony another began.

-- What a session's login proved (RFC 8176 `amr` values, comma-separated); kept across refresh.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';

-- One TOTP factor per account. `secret` is sealed under the master key, bound to its user;
-- `confirmed_at` is null while the enrolment waits for its first code; `last_step` is the
-- last time step accepted, so that no code works twice (RFC 6238 §5.2).
CREATE TABLE totp_factors (
    user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step    BIGINT NOT NULL
);

-- Recovery codes by their keyed hash; a used one keeps its row until the codes are replaced.
CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Passkeys (WebAuthn credentials). `credential` is the verified public key credential as JSON
-- (public key, counter, flags); `sign_count` repeats its counter so that an update can refuse a
-- counter that did not increase in the same statement.
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BYTEA NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    credential    TEXT NOT NULL,
    sign_count    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id, created_at);

-- Ceremonies in progress, by the hash of their id; single use, deleted when taken or expired.
-- `state` is sealed under the master key, bound to its id hash.
CREATE TABLE challenges (
    id_hash    BYTEA PRIMARY KEY,
    purpose    TEXT NOT NULL,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    state      BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX challenges_expiry ON challenges (expires_at);
