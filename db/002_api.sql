-- sipbx schema, version 2: REST API credentials (API tokens and admin log-in sessions).
-- Both keep only a SHA-256 hash of the secret, so a copy of the file does not grant access.

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,          -- what the token is for, e.g. "ci"
    token_hash   TEXT NOT NULL UNIQUE,   -- hex SHA-256 of the token
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER                 -- NULL until first used (updated once a minute at most)
);

CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,       -- hex SHA-256 of the cookie value
    username     TEXT NOT NULL REFERENCES admins (username) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,          -- the X-CSRF-Token the session must send
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL        -- slides forward while the session is used
) WITHOUT ROWID;
CREATE INDEX sessions_expiry ON sessions (expires_at);
