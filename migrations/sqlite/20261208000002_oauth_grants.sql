-- The apps each user has authorised: the scopes granted to each client, merged over every
-- consent, until the user (or an admin, by deleting the client) revokes them.
CREATE TABLE oauth_grants (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);
