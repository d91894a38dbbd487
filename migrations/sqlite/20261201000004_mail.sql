-- Whether the account's address is known to reach its owner.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;

-- Single-use tokens sent by mail (verification, email change, password reset), by their hash.
-- `address` is where the token was sent: the account's address then, or the new one it confirms.
CREATE TABLE email_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    address    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_expiry ON email_tokens (expires_at);

-- Messages waiting to be delivered, sealed under the master key. A sender claims a message by
-- setting its lease; a delivered or abandoned message is deleted.
CREATE TABLE mail_outbox (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER,
    message     BLOB NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (due_at);
