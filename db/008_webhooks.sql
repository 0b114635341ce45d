-- sipbx schema, version 8: webhooks. An administrator registers a URL with the events it
-- wants; each event is queued here as one delivery per webhook that wants it, in the same
-- transaction as the change it tells of, and a thread of the daemon POSTs it, retries it
-- with backoff, and keeps the outcome as the webhook's delivery log. The user change log
-- learns which changes created a user, for the user.changed event.

CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    url         TEXT NOT NULL,              -- http:// or https://, as the administrator gave it
    events      TEXT NOT NULL,              -- the events it gets, e.g. 'call.ended,user.changed'
    secret      TEXT NOT NULL,              -- the HMAC-SHA256 key of its signatures: needed as
                                            -- is, so kept as is (like the server secret)
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY,
    webhook_id  INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id    TEXT NOT NULL,              -- the event's id (a UUID): the same for every
                                            -- webhook and every try, for deduplication
    event       TEXT NOT NULL,              -- call.ended, ...
    body        TEXT NOT NULL,              -- the JSON POSTed: the same bytes on every try
    created_us  INTEGER NOT NULL,           -- when the event happened
    state       TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_try_us INTEGER,                    -- pending: not before this; NULL once finished
    last_try_us INTEGER,                    -- NULL before the first try
    last_status INTEGER,                    -- HTTP status of the last try; NULL without one
    last_error  TEXT NOT NULL DEFAULT '',   -- why the last try failed
    done_us     INTEGER                     -- delivered, or given up
);
-- The sender's question, per webhook: its next delivery due.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook_id, next_try_us)
    WHERE state = 'pending';
-- The delivery log, newest first, and its retention.
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id);

-- 1 on the log rows of a user's creation (a change of several rows counts as a creation
-- when one of them is).
ALTER TABLE user_changes ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER user_changes_users_ins;
CREATE TRIGGER user_changes_users_ins AFTER INSERT ON users BEGIN
    INSERT INTO user_changes (extension, created) VALUES (NEW.extension, 1);
END;
