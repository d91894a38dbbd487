-- OAuth clients. `registration` is the client object's settings as JSON (name, type, redirect
-- URIs, grant types, scopes, PKCE, consent, ID-token algorithm, back-channel logout URI), read
-- and written whole by the service; the secret is only ever a hash. A rotation may keep the
-- previous hash working until `previous_secret_until`. `from_file` marks a client that
-- CLIENTS_FILE owns, which the API may not change.
CREATE TABLE oauth_clients (
    client_id             TEXT PRIMARY KEY,
    registration          TEXT NOT NULL,
    secret_hash           TEXT,
    previous_secret_hash  TEXT,
    previous_secret_until INTEGER,
    from_file             INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL
);
CREATE INDEX oauth_clients_created ON oauth_clients (created_at, client_id);
