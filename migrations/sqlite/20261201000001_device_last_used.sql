-- Devices expire when unused for DEVICE_TOKEN_TTL, and each user keeps only the most recently
-- used ones, so the table no longer grows with every login.
ALTER TABLE devices ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;
UPDATE devices SET last_used_at = created_at;
CREATE INDEX devices_last_used ON devices (last_used_at);
-- The user's sessions, newest first, for listing and for the per-user cap.
CREATE INDEX sessions_user_created ON sessions (user_id, created_at, id);
