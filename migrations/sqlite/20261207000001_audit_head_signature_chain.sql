-- Head signatures form a chain: each covers the time it was made and the signature before it.
-- The newest is renewed at least once a minute (a heartbeat), in place while the head has not
-- moved, so a cut end shows as a newest signature that stopped, whoever has the database.
-- Signatures from before have no link: they are where the chain starts.
ALTER TABLE audit_head_signatures ADD COLUMN previous BLOB;
