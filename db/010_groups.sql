-- sipbx schema, version 10: ring groups, do-not-disturb, and call records linked to the
-- call they came from (transfers, pickups).

-- A user who does not want calls: they get 486 Busy Here, or the busy forward target.
ALTER TABLE users ADD COLUMN dnd INTEGER NOT NULL DEFAULT 0 CHECK (dnd IN (0, 1));

-- A ring group is an extension of its own whose calls ring its members: all at once
-- (ringall) or one after another for member_timeout seconds each (sequential), and then,
-- when nobody answered, no_answer_target (an extension or a SIP URI; '' for none).
CREATE TABLE ring_groups (
    extension        TEXT PRIMARY KEY,
    name             TEXT NOT NULL DEFAULT '',
    strategy         TEXT NOT NULL DEFAULT 'ringall'
                         CHECK (strategy IN ('ringall', 'sequential')),
    member_timeout   INTEGER NOT NULL DEFAULT 15 CHECK (member_timeout BETWEEN 1 AND 300),
    no_answer_target TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) WITHOUT ROWID;

-- The members of a group in the order they ring (sequential); a deleted user leaves
-- every group it was in.
CREATE TABLE ring_group_members (
    grp      TEXT NOT NULL REFERENCES ring_groups (extension) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    member   TEXT NOT NULL REFERENCES users (extension) ON DELETE CASCADE,
    PRIMARY KEY (grp, position),
    UNIQUE (grp, member)
) WITHOUT ROWID;
CREATE INDEX ring_group_members_member ON ring_group_members (member);

-- Users and groups share one namespace of extensions, whoever writes (REST, the CLI, a
-- hand-written statement).
CREATE TRIGGER users_not_a_group BEFORE INSERT ON users
WHEN EXISTS (SELECT 1 FROM ring_groups WHERE extension = NEW.extension) BEGIN
    SELECT RAISE(ABORT, 'the extension is a ring group');
END;
CREATE TRIGGER ring_groups_not_a_user BEFORE INSERT ON ring_groups
WHEN EXISTS (SELECT 1 FROM users WHERE extension = NEW.extension) BEGIN
    SELECT RAISE(ABORT, 'the extension is a user');
END;

-- A changed group reaches the SIP thread through the log of version 6, like a user, marked
-- as a group's change (which is not a user.changed event).
ALTER TABLE user_changes ADD COLUMN grp INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER user_changes_groups_ins AFTER INSERT ON ring_groups BEGIN
    INSERT INTO user_changes (extension, grp) VALUES (NEW.extension, 1);
END;
CREATE TRIGGER user_changes_groups_upd AFTER UPDATE ON ring_groups BEGIN
    INSERT INTO user_changes (extension, grp) VALUES (OLD.extension, 1);
END;
CREATE TRIGGER user_changes_groups_del AFTER DELETE ON ring_groups BEGIN
    INSERT INTO user_changes (extension, grp) VALUES (OLD.extension, 1);
END;
CREATE TRIGGER user_changes_members_ins AFTER INSERT ON ring_group_members BEGIN
    INSERT INTO user_changes (extension, grp) VALUES (NEW.grp, 1);
END;
CREATE TRIGGER user_changes_members_del AFTER DELETE ON ring_group_members BEGIN
    INSERT INTO user_changes (extension, grp) VALUES (OLD.grp, 1);
END;

-- A call made because of a transfer or a pickup names the call it came from (its
-- Call-ID) and how: transfer (a REFER), attended-transfer (INVITE with Replaces of an
-- answered call) or pickup (Replaces of a ringing one).
ALTER TABLE cdrs ADD COLUMN linked_call TEXT NOT NULL DEFAULT '';
ALTER TABLE cdrs ADD COLUMN link TEXT NOT NULL DEFAULT '';
CREATE INDEX cdrs_linked ON cdrs (linked_call) WHERE linked_call <> '';
