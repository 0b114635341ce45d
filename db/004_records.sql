-- sipbx schema, version 4: call detail records and SIP message traces.
-- Times are microseconds since the epoch (UTC) where the column name ends in _us.

CREATE TABLE cdrs (
    id           INTEGER PRIMARY KEY,
    call_id      TEXT NOT NULL,
    caller       TEXT NOT NULL,          -- extension of the caller
    caller_name  TEXT NOT NULL DEFAULT '',
    dialled      TEXT NOT NULL,          -- the number the caller dialled
    answered_by  TEXT NOT NULL DEFAULT '', -- extension (or URI) whose device answered
    forwards     TEXT NOT NULL DEFAULT '[]', -- JSON [{"from","to","reason"}, ...]
    start_us     INTEGER NOT NULL,       -- INVITE in
    answer_us    INTEGER,                -- 2xx relayed, NULL when never answered
    end_us       INTEGER,                -- BYE, failure or cancel; NULL while open
    duration     INTEGER NOT NULL DEFAULT 0, -- seconds from start to end
    billsec      INTEGER NOT NULL DEFAULT 0, -- seconds from answer to end
    disposition  TEXT NOT NULL CHECK (disposition IN
                     ('ANSWERED', 'BUSY', 'NO ANSWER', 'CANCELLED', 'FAILED')),
    status       INTEGER NOT NULL DEFAULT 0, -- final SIP status of the INVITE
    phrase       TEXT NOT NULL DEFAULT '',
    hangup_by    TEXT NOT NULL DEFAULT '',  -- caller, callee, sipbx
    user_agent   TEXT NOT NULL DEFAULT '',  -- the caller's
    open         INTEGER NOT NULL DEFAULT 0, -- 1: answered, not yet ended (journal)
    interrupted  INTEGER NOT NULL DEFAULT 0  -- 1: closed at start-up after a crash
);
CREATE UNIQUE INDEX cdrs_call ON cdrs (call_id, start_us);
CREATE INDEX cdrs_start ON cdrs (start_us);
CREATE INDEX cdrs_caller ON cdrs (caller, start_us);
CREATE INDEX cdrs_dialled ON cdrs (dialled, start_us);
CREATE INDEX cdrs_disposition ON cdrs (disposition, start_us);
CREATE INDEX cdrs_open ON cdrs (open) WHERE open = 1;

CREATE TABLE trace_messages (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL,
    time_us     INTEGER NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    transport   TEXT NOT NULL,           -- udp or tcp
    local       TEXT NOT NULL,           -- sipbx's address:port
    remote      TEXT NOT NULL,           -- the peer's address:port
    first_line  TEXT NOT NULL,
    retransmission INTEGER NOT NULL DEFAULT 0,
    raw         TEXT NOT NULL            -- the message exactly as on the wire
);
CREATE INDEX trace_call ON trace_messages (call_id, id);
CREATE INDEX trace_time ON trace_messages (time_us);

-- The total size of stored trace text, kept by triggers so retention can bound it cheaply.
INSERT INTO change_counters (name, value) VALUES ('trace_bytes', 0);
CREATE TRIGGER trace_bytes_ins AFTER INSERT ON trace_messages BEGIN
    UPDATE change_counters SET value = value + length(NEW.raw) WHERE name = 'trace_bytes';
END;
CREATE TRIGGER trace_bytes_del AFTER DELETE ON trace_messages BEGIN
    UPDATE change_counters SET value = value - length(OLD.raw) WHERE name = 'trace_bytes';
END;
