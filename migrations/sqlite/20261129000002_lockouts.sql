-- Failed-attempt counters and locks, by key ("email:<address>" or "device:<user id>:<hash>").
CREATE TABLE lockouts (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER,
    -- What the last attempt found: 'counted' or 'locked'.
    last_gate    TEXT NOT NULL
);
