-- The chain's head, signed periodically with a key derived from the master key (kept outside
-- the database): someone who rewrites the whole trail and its head cannot sign the result.
CREATE TABLE audit_head_signatures (
    seq       BIGINT PRIMARY KEY,
    hash      BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    signed_at BIGINT NOT NULL
);
