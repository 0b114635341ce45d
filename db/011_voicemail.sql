-- sipbx schema, version 11: voicemail. A forward rule may send the call to the user's own
-- voicemail instead of a target; messages are WAV files in the data directory
-- (voicemail/), described here; a user's own greeting is kept here as 8 kHz 16-bit PCM.
-- Deleting a user deletes its rows; the daemon deletes the files no row names any more.

ALTER TABLE forward_rules ADD COLUMN voicemail INTEGER NOT NULL DEFAULT 0
    CHECK (voicemail IN (0, 1)); -- 1: the call goes to the user's voicemail (target unused)

CREATE TABLE voicemail_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a deleted id stays gone
    extension   TEXT NOT NULL REFERENCES users (extension) ON DELETE CASCADE,
    caller      TEXT NOT NULL,              -- the caller's extension (authenticated by sipbx)
    caller_name TEXT NOT NULL DEFAULT '',   -- the display name the caller sent
    call_id     TEXT NOT NULL DEFAULT '',   -- of the call that left it (its record and ladder)
    received_us INTEGER NOT NULL,           -- when the recording started, UTC microseconds
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
    heard       INTEGER NOT NULL DEFAULT 0 CHECK (heard IN (0, 1)),
    file        TEXT NOT NULL UNIQUE,       -- name in the voicemail directory (random, .wav)
    bytes       INTEGER NOT NULL DEFAULT 0  -- size of the file
);
CREATE INDEX voicemail_messages_box ON voicemail_messages (extension, heard, received_us);
CREATE INDEX voicemail_messages_age ON voicemail_messages (received_us);

CREATE TABLE voicemail_greetings (
    extension  TEXT PRIMARY KEY REFERENCES users (extension) ON DELETE CASCADE,
    pcm        BLOB NOT NULL,              -- 8000 Hz, mono, 16-bit little-endian samples
    updated_at INTEGER NOT NULL            -- seconds since the epoch
) WITHOUT ROWID;
