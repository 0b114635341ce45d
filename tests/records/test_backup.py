"""Backup during a call load: `sipbx backup` of the live database while SIPp calls run
holds every call record that was stored before it started (and nothing that came after it
finished), the daemon's calls go on undisturbed, `sipbx restore` refuses a database a
running daemon holds, and a daemon started on the restored copy lists those records. A
backup carries the voicemail messages' audio (one file still), and a restore puts it back
in the data directory.

    python3 test_backup.py --sipbx PATH/TO/sipbx
"""

import os
import sqlite3
import subprocess
import time

import records
from records import apitest


def run_cli(*args):
    return subprocess.run([apitest.SIPBX] + list(args), capture_output=True, text=True,
                          timeout=120, env=records.sanitizer_env())


def read_db(path, sql):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


class BackupUnderLoad(records.RecordsTest):

    def closed_ids(self, prefix):
        return {r[0] for r in self.d.db_query(
            "SELECT call_id FROM cdrs WHERE open = 0 AND call_id LIKE ?", (prefix + "%",))}

    def test_backup_during_calls_restores_every_record(self):
        # 1 s calls at 25 per second: records are written all through the backup
        cid, a, b = self.start_load("backup", 1000, 25, 100)
        prefix = cid.split("%u")[0]
        backup = os.path.join(self.workdir, "backup.db")
        try:
            self.wait_for(lambda: len(self.closed_ids(prefix)) >= 50, 30,
                          "no call records under load")
            before = self.closed_ids(prefix)
            out = run_cli("backup", backup, "--db", self.d.db)
            after = self.closed_ids(prefix)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("written to " + backup, out.stdout)
            self.assertEqual(out.stderr, "")

            # A restore over the database the running daemon holds is refused, in one line,
            # and changes nothing.
            refused = run_cli("restore", backup, "--db", self.d.db)
            self.assertEqual(refused.returncode, 1)
            self.assertIn("in use by a running sipbx", refused.stderr)
            self.assertEqual(refused.stderr.count("\n"), 1, refused.stderr)
            # the load goes on after the backup (asserted below, once it is stopped)
            self.wait_for(lambda: len(self.closed_ids(prefix)) > len(after), 10)
        finally:
            a.kill()
            b.kill()
        self.assertEqual(read_db(backup, "PRAGMA integrity_check"), [("ok",)])
        saved = read_db(backup, "SELECT call_id, open FROM cdrs WHERE call_id LIKE '%s%%'"
                        % prefix)
        saved_closed = {r[0] for r in saved if not r[1]}
        saved_all = {r[0] for r in saved}
        self.assertEqual(before - saved_closed, set(), "records stored before the backup missing")
        self.assertEqual(saved_closed - after, set(), "records from after the backup in it")
        self.assertGreater(len(self.closed_ids(prefix)), len(after),
                           "the load did not go on after the backup")
        # the users and the token came along
        self.assertEqual(read_db(backup, "SELECT count(*) FROM users")[0][0],
                         len(records.PASSWORDS))

        # Restore into a new place and start a daemon on it: it lists exactly what the
        # backup held (calls answered at backup time are closed as interrupted).
        self.d.stop(keep=False)
        target_dir = os.path.join(self.workdir, "restored")
        os.mkdir(target_dir)
        target = os.path.join(target_dir, "sipbx.db")
        out = run_cli("restore", backup, "--db", target)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("restored from", out.stdout)
        self.__class__.d = records.Daemon(dir=target_dir)
        listed = [c for c in self.cdrs(ext="100") if c["call_id"].startswith(prefix)]
        self.assertEqual({c["call_id"] for c in listed}, saved_all)
        self.assertEqual(len(listed), len(saved_all))
        for c in listed:
            if c["call_id"] in saved_closed:
                self.assertEqual((c["disposition"], c["hangup_by"], c["interrupted"]),
                                 ("ANSWERED", "caller", False), c)
            else:
                self.assertEqual(c["hangup_by"], "sipbx", c)
        open_at_backup = saved_all - saved_closed
        if open_at_backup:
            self.assertIn("closed as interrupted", self.d.log())

    def test_backup_voicemail(self):
        vm_dir = os.path.join(self.d.dir, "voicemail")
        os.makedirs(vm_dir, exist_ok=True)
        audio = {}
        con = sqlite3.connect(self.d.db, timeout=10)
        for i, name in enumerate(("%032x.wav" % 0xA1, "%032x.wav" % 0xB2, "%032x.wav" % 0xC3)):
            if i < 2:  # the third one's file is gone (deleted since): left out of the backup
                audio[name] = os.urandom(1000 + i)
                with open(os.path.join(vm_dir, name), "wb") as f:
                    f.write(audio[name])
            con.execute("INSERT INTO voicemail_messages (extension, caller, received_us, "
                        "duration_ms, file, bytes) VALUES ('101', '100', ?, 60, ?, 1044)",
                        (int(time.time() * 1e6) + i, name))
        con.commit()
        con.close()
        backup = os.path.join(self.workdir, "vm-backup.db")
        out = run_cli("backup", backup, "--db", self.d.db)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("voicemail message", out.stderr)  # the one left out, said once
        self.assertEqual(out.stderr.count("\n"), 1, out.stderr)
        self.assertEqual(dict(read_db(backup, "SELECT name, data FROM backup_files")), audio)
        self.assertEqual(sorted(r[0] for r in read_db(
            backup, "SELECT file FROM voicemail_messages")), sorted(audio))
        # restored into another directory: the files are back, the carrier table is gone
        target_dir = os.path.join(self.workdir, "vm-restored")
        os.mkdir(target_dir)
        target = os.path.join(target_dir, "sipbx.db")
        out = run_cli("restore", backup, "--db", target)
        self.assertEqual(out.returncode, 0, out.stderr)
        for name, data in audio.items():
            with open(os.path.join(target_dir, "voicemail", name), "rb") as f:
                self.assertEqual(f.read(), data)
        self.assertEqual(sorted(os.listdir(os.path.join(target_dir, "voicemail"))), sorted(audio))
        self.assertEqual(read_db(target, "SELECT name FROM sqlite_master WHERE name = "
                                 "'backup_files'"), [])
        self.assertEqual(len(read_db(target, "SELECT id FROM voicemail_messages")), 2)

    def test_backup_errors(self):
        # an unwritable destination: one line, no file left behind
        out = run_cli("backup", "/nonexistent-dir/x.db", "--db", self.d.db)
        self.assertEqual(out.returncode, 1)
        self.assertIn("/nonexistent-dir/x.db", out.stderr)
        self.assertEqual(out.stderr.count("\n"), 1, out.stderr)
        # no database
        out = run_cli("backup", os.path.join(self.workdir, "y.db"), "--db",
                      os.path.join(self.workdir, "missing.db"))
        self.assertEqual(out.returncode, 1)
        self.assertIn("no database at", out.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.workdir, "y.db")))
        # restoring something that is not a sipbx database leaves the target untouched
        junk = os.path.join(self.workdir, "junk.db")
        with open(junk, "wb") as f:
            f.write(b"this is not a database" * 100)
        target = os.path.join(self.workdir, "target.db")
        with open(target, "wb") as f:
            f.write(b"keep me")
        out = run_cli("restore", junk, "--db", target)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(out.stderr.count("\n"), 1, out.stderr)
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"keep me")


if __name__ == "__main__":
    records.main()
