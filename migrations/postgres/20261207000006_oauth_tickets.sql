-- Single-use tickets of OAuth authorizations in progress (codes, pushed requests, interactions),
-- under the SHA-256 of their secret. `takes` counts the takes: the first is the one that wins,
-- a later one is a replay. A row is kept until `keep_until` (milliseconds), then purged.
CREATE TABLE oauth_tickets (
    kind       TEXT NOT NULL,
    key        BYTEA NOT NULL,
    value      BYTEA NOT NULL,
    keep_until BIGINT NOT NULL,
    takes      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, key)
);
CREATE INDEX oauth_tickets_keep_until ON oauth_tickets (keep_until);
