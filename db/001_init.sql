-- sipbx schema, version 1: settings, users, registrations, admins.
-- Times are UTC seconds since the epoch unless a column name says otherwise.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Bumped by triggers so a running daemon notices user changes made by another
-- process (the CLI) or thread (REST) without re-reading the table on every request.
CREATE TABLE change_counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO change_counters (name, value) VALUES ('users', 0);

CREATE TABLE users (
    extension    TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    ha1          TEXT NOT NULL,        -- hex MD5(extension ":" realm ":" password)
    realm        TEXT NOT NULL,        -- the realm ha1 was computed for
    enabled      INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    call_waiting INTEGER NOT NULL DEFAULT 1 CHECK (call_waiting IN (0, 1)),
    ring_timeout INTEGER CHECK (ring_timeout IS NULL OR ring_timeout BETWEEN 1 AND 3600),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TRIGGER users_changed_ins AFTER INSERT ON users BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'users';
END;
CREATE TRIGGER users_changed_upd AFTER UPDATE ON users BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'users';
END;
CREATE TRIGGER users_changed_del AFTER DELETE ON users BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'users';
END;

CREATE TABLE registrations (
    id            INTEGER PRIMARY KEY,
    extension     TEXT NOT NULL REFERENCES users (extension) ON DELETE CASCADE,
    contact       TEXT NOT NULL,       -- the Contact URI as the device sent it
    source        TEXT NOT NULL,       -- address:port the REGISTER came from
    transport     TEXT NOT NULL,       -- udp or tcp
    user_agent    TEXT NOT NULL DEFAULT '',
    call_id       TEXT NOT NULL,
    cseq          INTEGER NOT NULL,
    instance      TEXT NOT NULL DEFAULT '', -- +sip.instance, when the device sends one
    q             REAL NOT NULL DEFAULT 1.0,
    registered_at INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    UNIQUE (extension, contact)
);
CREATE INDEX registrations_expiry ON registrations (expires_at);

CREATE TABLE admins (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,       -- crypt(3), yescrypt
    created_at    INTEGER NOT NULL
);
