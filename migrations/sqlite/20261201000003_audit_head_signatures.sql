-- The chain's head, signed periodically with a key derived from the master key (kept outside
-- the database): someone who rewrites the whole trail and its head cannot sign the result.
CREATE TABLE audit_head_signatures (
    seq       INTEGER PRIMARY KEY,
    hash      BLOB NOT NULL,
    signature BLOB NOT NULL,
    signed_at INTEGER NOT NULL
);
