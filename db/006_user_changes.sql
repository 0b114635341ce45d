-- sipbx schema, version 6: a log of the users whose row or forward rules changed, so the
-- running daemon applies only what changed (a delta) instead of reloading every user on
-- each change. Triggers write it whatever made the change (REST, the CLI in another
-- process, a hand-written statement); the daemon's writer thread reads the rows after the
-- last sequence number it applied, hands those users to the SIP thread, and deletes the
-- rows it has applied. It replaces the 'users' change counter of version 1.

CREATE TABLE user_changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, not even after pruning
    extension TEXT NOT NULL                      -- the user to read again (it may be gone)
);

DROP TRIGGER users_changed_ins;
DROP TRIGGER users_changed_upd;
DROP TRIGGER users_changed_del;
DROP TRIGGER forward_rules_changed_ins;
DROP TRIGGER forward_rules_changed_upd;
DROP TRIGGER forward_rules_changed_del;
DELETE FROM change_counters WHERE name = 'users';

CREATE TRIGGER user_changes_users_ins AFTER INSERT ON users BEGIN
    INSERT INTO user_changes (extension) VALUES (NEW.extension);
END;
CREATE TRIGGER user_changes_users_upd AFTER UPDATE ON users BEGIN
    INSERT INTO user_changes (extension) VALUES (OLD.extension);
    INSERT INTO user_changes (extension) SELECT NEW.extension WHERE NEW.extension <> OLD.extension;
END;
CREATE TRIGGER user_changes_users_del AFTER DELETE ON users BEGIN
    INSERT INTO user_changes (extension) VALUES (OLD.extension);
END;
CREATE TRIGGER user_changes_rules_ins AFTER INSERT ON forward_rules BEGIN
    INSERT INTO user_changes (extension) VALUES (NEW.extension);
END;
CREATE TRIGGER user_changes_rules_upd AFTER UPDATE ON forward_rules BEGIN
    INSERT INTO user_changes (extension) VALUES (OLD.extension);
    INSERT INTO user_changes (extension) SELECT NEW.extension WHERE NEW.extension <> OLD.extension;
END;
CREATE TRIGGER user_changes_rules_del AFTER DELETE ON forward_rules BEGIN
    INSERT INTO user_changes (extension) VALUES (OLD.extension);
END;
