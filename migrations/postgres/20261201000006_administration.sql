-- Account administration: a disabled flag, the last login, the admin behind an event, and an
-- index for the newest-first listing. Emails are stored normalised, so they compare byte-wise
-- ("C"), as on SQLite: the unique index on `email` then also serves prefix ranges.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_login_at BIGINT;
ALTER TABLE users ALTER COLUMN email TYPE TEXT COLLATE "C";
CREATE INDEX users_newest ON users (created_at DESC, id DESC);

ALTER TABLE audit_events ADD COLUMN actor_id TEXT;
