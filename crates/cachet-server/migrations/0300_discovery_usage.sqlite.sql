-- Contact discovery counters: how many identifier hashes each user looked up in each
-- window (`docs/server.md`, "Contact discovery"). In the database rather than in memory,
-- so that every node sharing it counts against the same budget. Rows of windows that
-- ended are purged by the janitor.
CREATE TABLE discovery_usage (
    user_id      TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    hashes       INTEGER NOT NULL,
    PRIMARY KEY (user_id, window_start)
);
CREATE INDEX discovery_usage_window_end ON discovery_usage (window_end);
