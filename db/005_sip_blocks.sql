-- sipbx schema, version 5: addresses blocked for failed SIP digest checks, so a block
-- survives a restart. Written by the daemon (the writer thread); the CLI's `sipbx block del`
-- only marks a row lifted, and the running daemon lifts the block and deletes the row.

CREATE TABLE sip_blocks (
    source     TEXT PRIMARY KEY,          -- the IPv4 or IPv6 address, canonical text form
    reason     TEXT NOT NULL,             -- e.g. "10 failed digest checks in 60 s"
    failures   INTEGER NOT NULL DEFAULT 0, -- failed digest checks that led to the block
    offences   INTEGER NOT NULL DEFAULT 1, -- 1: a first block, 2: a repeat (doubled), ...
    extensions TEXT NOT NULL DEFAULT '',  -- extensions it tried, comma-separated
    since      INTEGER NOT NULL,          -- when the block started
    until      INTEGER NOT NULL,          -- when it ends by itself
    lifted     INTEGER NOT NULL DEFAULT 0 CHECK (lifted IN (0, 1)) -- 1: the CLI lifted it
) WITHOUT ROWID;

-- A lift by the CLI (another process) reaches the running daemon the way a user change
-- does: the writer thread notices the counter move.
INSERT INTO change_counters (name, value) VALUES ('sip_blocks', 0);
CREATE TRIGGER sip_blocks_lifted AFTER UPDATE OF lifted ON sip_blocks WHEN NEW.lifted = 1 BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'sip_blocks';
END;
