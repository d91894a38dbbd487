-- How a session was opened: a login through the API, a browser's sign-in on the pages, or an
-- OAuth client's grant (its client, the scopes the user granted and the browser's session that granted them).
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'api';
ALTER TABLE sessions ADD COLUMN client_id TEXT;
ALTER TABLE sessions ADD COLUMN scope TEXT;
-- A grant's parent: the browser's session that granted it.
ALTER TABLE sessions ADD COLUMN parent_id TEXT;
-- A grant's sign-in time (milliseconds): the `auth_time` of its ID tokens.
ALTER TABLE sessions ADD COLUMN auth_time BIGINT;
