-- The OAuth client an audit event concerns (the event's `client_id`), when there is one.
ALTER TABLE audit_events ADD COLUMN client_id TEXT;
