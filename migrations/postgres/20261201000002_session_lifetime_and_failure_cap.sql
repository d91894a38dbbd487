-- A session ends at `ends_at` (its login plus SESSION_LIFETIME) however often it is refreshed,
-- and remembers the device token it logged in with, whose lock holds its credential checks.
ALTER TABLE sessions ADD COLUMN ends_at BIGINT NOT NULL DEFAULT 9223372036854775807;
ALTER TABLE sessions ADD COLUMN device_hash BYTEA;
-- Failures without a success, across lock periods, and when the last one happened: past
-- LOCKOUT_MAX_FAILURES the key stays locked until an unlock or a reset.
ALTER TABLE lockouts ADD COLUMN consecutive INTEGER NOT NULL DEFAULT 0;
ALTER TABLE lockouts ADD COLUMN last_failure_at BIGINT NOT NULL DEFAULT 0;
