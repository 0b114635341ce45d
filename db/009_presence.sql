-- sipbx schema, version 9: presence and busy lamps (RFC 6665 subscriptions, RFC 3903
-- publications), so that both survive a restart with their expiry. Written only by the daemon
-- (the writer thread, from the SIP thread's queue) and read once at start-up. No foreign key
-- to users: a row whose user is gone when the daemon starts is ended by it (a final NOTIFY
-- to the watcher), which a cascade would have made impossible.

CREATE TABLE subscriptions (
    call_id     TEXT NOT NULL,            -- the dialog: Call-ID ...
    local_tag   TEXT NOT NULL,            -- ... and sipbx's tag (To of the SUBSCRIBE)
    package     TEXT NOT NULL,            -- Event package: presence, dialog
    event_id    TEXT NOT NULL DEFAULT '', -- the Event header's id parameter, if any
    watcher     TEXT NOT NULL,            -- extension that subscribed (authenticated)
    presentity  TEXT NOT NULL,            -- extension watched
    remote      TEXT NOT NULL,            -- the watcher's From (with its tag): To of NOTIFY
    local       TEXT NOT NULL,            -- sipbx's To (with its tag): From of NOTIFY
    target      TEXT NOT NULL,            -- the watcher's Contact: Request-URI of NOTIFY
    next_hop    TEXT NOT NULL,            -- sip:ADDR:PORT;transport=X, where SUBSCRIBE came from
    route       TEXT NOT NULL DEFAULT '', -- Route set towards the watcher ('' : none)
    contact     TEXT NOT NULL,            -- sipbx's Contact in this dialog
    local_cseq  INTEGER NOT NULL,         -- CSeq of the last NOTIFY sent
    remote_cseq INTEGER NOT NULL,         -- CSeq of the last SUBSCRIBE taken
    state_hash  TEXT NOT NULL DEFAULT '', -- what the last NOTIFY said, hashed (a change at
                                          -- start-up is notified)
    version     INTEGER NOT NULL DEFAULT 0, -- dialog-info version of the last NOTIFY
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (call_id, local_tag)
) WITHOUT ROWID;

CREATE TABLE presence_publications (
    etag         TEXT PRIMARY KEY,        -- entity tag sipbx gave (SIP-ETag)
    extension    TEXT NOT NULL,           -- whose presence (the authenticated publisher)
    body         TEXT NOT NULL,           -- the PIDF document as published
    published_at INTEGER NOT NULL,        -- last publication or modification
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
