-- sipbx schema, version 3: call-forward rules, at most one per user and kind.

CREATE TABLE forward_rules (
    extension TEXT NOT NULL REFERENCES users (extension) ON DELETE CASCADE,
    kind      TEXT NOT NULL CHECK (kind IN ('unconditional', 'busy', 'no_answer', 'unavailable')),
    enabled   INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    target    TEXT NOT NULL DEFAULT '',  -- an extension of this PBX or a full SIP URI
    timeout   INTEGER CHECK (timeout IS NULL OR timeout BETWEEN 1 AND 300), -- no_answer only
    PRIMARY KEY (extension, kind)
) WITHOUT ROWID;

-- A changed rule reaches the SIP thread the way a changed user does.
CREATE TRIGGER forward_rules_changed_ins AFTER INSERT ON forward_rules BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'users';
END;
CREATE TRIGGER forward_rules_changed_upd AFTER UPDATE ON forward_rules BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'users';
END;
CREATE TRIGGER forward_rules_changed_del AFTER DELETE ON forward_rules BEGIN
    UPDATE change_counters SET value = value + 1 WHERE name = 'users';
END;
