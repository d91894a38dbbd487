-- Users, devices, sessions, refresh tokens, signing keys, secrets, the audit trail and lockouts.
-- Times are milliseconds since the Unix epoch (UTC), as in the SQLite schema, so that both
-- backends keep the same semantics; ids are UUID strings.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE devices (
    token_hash BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX devices_user ON devices (user_id);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT,
    successor  BYTEA
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE audit_events (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    user_id    TEXT,
    email      TEXT,
    ip         TEXT,
    user_agent TEXT,
    request_id TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT
);
CREATE INDEX audit_events_user ON audit_events (user_id, at);
CREATE INDEX audit_events_type ON audit_events (type, at);

CREATE TABLE lockouts (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT,
    last_gate    TEXT NOT NULL
);
