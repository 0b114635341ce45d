"""api_voicemail: /api/v1/users/{ext}/voicemail: a message left by a real call (a raw phone
talking RTP) is listed, served as its WAV file, marked heard, deleted (row and file); every
change is a voicemail.changed event with the new counts; greetings are uploaded as any common
WAV (converted to 8 kHz), served back, refused with a clear reason when they are not audio
or too long or short, and deleted; deleting a user deletes its messages' files; retention
deletes messages past the age limit and heard ones past the quota, and files no row names;
errors name the field and nothing half-done is left."""

import http.client
import json
import os
import sqlite3
import struct
import time

import apitest
from apitest import Daemon, DaemonTest
from calltest import EventStream
from sipbxtest import media
from sipbxtest.phone import Phone


def put_message(d, ext, caller, samples, heard=0, age_days=0.0, name=None):
    """A message as sipbx stores one (file, then row), written by another process."""
    os.makedirs(os.path.join(d.dir, "voicemail"), exist_ok=True)
    name = name or "%032x.wav" % int.from_bytes(os.urandom(16), "big")
    media.write_wav(os.path.join(d.dir, "voicemail", name), samples)
    con = sqlite3.connect(d.db, timeout=10)
    try:
        con.execute("INSERT INTO voicemail_messages (extension, caller, received_us, "
                    "duration_ms, heard, file, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (ext, caller, int((time.time() - age_days * 86400) * 1e6),
                     len(samples) // 8, heard, name, 44 + 2 * len(samples)))
        con.commit()
    finally:
        con.close()
    return name


class Voicemail(DaemonTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for ext in ("100", "101", "102"):
            cls.create_user(ext, "secret" + ext)
        r = cls.d.request("PUT", "/api/v1/users/101/forwarding",
                          {"unavailable": {"enabled": True, "voicemail": True}},
                          token=cls.token)
        assert r.status == 200, r

    def vm(self, ext="101", suffix="", method="GET", body=None, **kw):
        return self.api(method, "/api/v1/users/%s/voicemail%s" % (ext, suffix), body, **kw)

    def put_greeting(self, ext, body, ctype="audio/wav"):
        """PUT of a greeting; one large upload is taken at a time, and the one before may
        still be being finished when its answer arrives: then again (503, Retry-After)."""
        deadline = time.time() + 10
        while True:
            r = self.vm(ext, "/greeting", method="PUT", raw=body, content_type=ctype)
            if r.status != 503 or time.time() > deadline:
                return r
            time.sleep(0.2)

    def events(self):
        ev = EventStream(self.d, self.token)
        self.addCleanup(ev.close)
        return ev

    def wait_vm_event(self, ev, ext, new, old):
        deadline = time.time() + 15
        while time.time() < deadline:
            e = ev.next_event(timeout=15)
            if e and e.get("event") == "voicemail.changed":
                data = json.loads(e["data"])
                if data == {"extension": ext, "new": new, "old": old}:
                    return data
        self.fail("no voicemail.changed %s %d/%d" % (ext, new, old))

    def leave_message(self, seconds=1.5):
        """100 calls 101 (not registered: its voicemail), talks after the greeting, hangs
        up; returns the samples sent."""
        rtp = media.RtpPeer()
        phone = Phone(self.d.sip_port, "100", "secret100")
        try:
            r, dlg = phone.invite("101", sdp=media.sdp(rtp.port))
            self.assertEqual(r.status, 200, r)
            rtp.set_remote(r.body)
            # the default greeting ("the person at extension 1 0 1 ...") and the tone
            self.assertTrue(rtp.wait_tone_end(), "no greeting and tone")
            signal = media.test_signal(seconds, seed=3)
            rtp.send_audio(signal)
            phone.in_dialog(dlg, "BYE")
        finally:
            phone.close()
            rtp.close()
        return signal

    def test_mailbox(self):
        r = self.vm()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"items": [], "new": 0, "old": 0, "greeting": "default"})
        ev = self.events()
        signal = self.leave_message()
        self.wait_vm_event(ev, "101", 1, 0)
        r = self.vm()
        self.assertEqual((r.json["new"], r.json["old"]), (1, 0))
        [m] = r.json["items"]
        self.assertEqual(m["caller"], "100")
        self.assertFalse(m["heard"])
        self.assertRegex(m["received_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertAlmostEqual(m["duration"], 1.5, delta=0.35)
        self.assertEqual(m["audio_url"], "/api/v1/users/101/voicemail/%d.wav" % m["id"])
        self.assertEqual(self.vm(suffix="/%d" % m["id"]).json, m)
        # the audio: a WAV file of what was said
        r = self.api("GET", m["audio_url"])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "audio/wav")
        self.assertIn("voicemail-101-%d.wav" % m["id"], r.header("Content-Disposition"))
        self.assertEqual(len(r.body), m["size"])
        path = os.path.join(self.d.dir, "wav.wav")
        with open(path, "wb") as f:
            f.write(r.body)
        rate, ch, bits, samples = media.read_wav(path)
        self.assertEqual((rate, ch, bits), (8000, 1, 16))
        sent = media.decode(media.encode(signal))
        pack = lambda xs: struct.pack("<%dh" % len(xs), *xs)
        self.assertGreaterEqual(pack(samples).find(pack(sent[4000:8000])), 0,
                                "what was said is not in the file")
        # heard, and new again
        r = self.vm(suffix="/%d" % m["id"], method="PATCH", body={"heard": True})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["heard"])
        self.wait_vm_event(ev, "101", 0, 1)
        self.assertEqual(self.vm(suffix="/%d" % m["id"], method="PATCH",
                                 body={"heard": False}).json["heard"], False)
        self.wait_vm_event(ev, "101", 1, 0)
        for body, status, code, msg in [
                ({}, 422, "missing_field", "heard: required"),
                ({"heard": "yes"}, 422, "invalid_field", "heard"),
                ({"heard": True, "caller": "x"}, 422, "unknown_field", "caller")]:
            self.assertError(self.vm(suffix="/%d" % m["id"], method="PATCH", body=body), status,
                             code, msg)
        # not in this mailbox, not a message, not there
        self.assertError(self.vm("100", suffix="/%d" % m["id"]), 404, "not_found")
        self.assertError(self.vm("100", suffix="/%d.wav" % m["id"]), 404, "not_found")
        for bad in ("abc", "0", "-1", "01", "99999"):
            self.assertError(self.vm(suffix="/" + bad), 404, "not_found")
        self.assertError(self.vm("199"), 404, "not_found")
        for method, body in (("DELETE", None), ("PATCH", {"heard": False})):
            r = self.vm(suffix="/%d.wav" % m["id"], method=method, body=body)
            self.assertError(r, 405, "method_not_allowed")
            self.assertEqual(r.header("Allow"), "GET", r.headers)
        self.assertError(self.api("GET", m["audio_url"], token=None), 401)
        # deleted: row, file and count
        con = sqlite3.connect(self.d.db)
        [(name,)] = con.execute("SELECT file FROM voicemail_messages").fetchall()
        con.close()
        wav = os.path.join(self.d.dir, "voicemail", name)
        self.assertTrue(os.path.exists(wav))
        self.assertEqual(self.vm(suffix="/%d" % m["id"], method="DELETE").status, 204)
        self.wait_vm_event(ev, "101", 0, 0)
        self.assertFalse(os.path.exists(wav))
        self.assertError(self.vm(suffix="/%d" % m["id"]), 404, "not_found")
        self.assertError(self.vm(suffix="/%d" % m["id"], method="DELETE"), 404, "not_found")
        self.assertEqual(self.vm().json["items"], [])

    def test_greeting(self):
        r = self.vm("102", "/greeting")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["greeting"], "default")
        self.assertGreater(r.json["duration"], 3)
        r = self.vm("102", "/greeting.wav")
        self.assertEqual((r.status, r.header("Content-Type")), (200, "audio/wav"))
        self.assertEqual(r.body[:4], b"RIFF")
        # 2 s of a 44.1 kHz stereo recording, far larger than the usual 64 KiB of a body
        stereo = []
        for s in media.test_signal(2.0 * 44100 / 8000, seed=6)[:88200]:
            stereo += [s, s]
        wav = media.wav_bytes(stereo, rate=44100, channels=2)
        self.assertGreater(len(wav), 64 * 1024)
        r = self.put_greeting("102", wav)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["greeting"], "custom")
        self.assertAlmostEqual(r.json["duration"], 2.0, delta=0.01)
        self.assertEqual(self.vm("102").json["greeting"], "custom")
        r = self.vm("102", "/greeting.wav")
        self.assertEqual(len(r.body), 44 + 2 * 16000)
        bad = [
            (b"hello", "audio/wav", 422, "invalid_audio", "not a WAV file"),
            (wav, "text/plain", 415, None, "audio/wav"),
            (wav, None, 415, None, None),
            (media.wav_bytes([0] * 400), "audio/x-wav", 422, "invalid_audio",
             "from half a second to 60 seconds"),
            (media.wav_bytes([0] * 8000 * 61), "audio/wav", 422, "invalid_audio",
             "lasts 61.0 s"),
        ]
        for body, ctype, status, code, msg in bad:
            with self.subTest(ctype=ctype, size=len(body)):
                self.assertError(self.put_greeting("102", body, ctype), status, code, msg)
        self.assertEqual(self.vm("102", "/greeting").json["duration"], 2.0)  # unchanged
        # more than 16 MiB announced: refused before the body is read
        conn = http.client.HTTPConnection("127.0.0.1", self.d.http_port, timeout=10)
        conn.putrequest("PUT", "/api/v1/users/102/voicemail/greeting")
        conn.putheader("Authorization", "Bearer " + self.token)
        conn.putheader("Content-Type", "audio/wav")
        conn.putheader("Content-Length", str(17 << 20))
        conn.endheaders()
        self.assertEqual(conn.getresponse().status, 413)
        conn.close()
        self.assertEqual(self.vm("102", "/greeting", method="DELETE").status, 204)
        self.assertEqual(self.vm("102", "/greeting").json["greeting"], "default")
        self.assertError(self.vm("102", "/greeting", method="DELETE"), 404, "not_found")
        self.assertError(self.vm("199", "/greeting", method="PUT", raw=wav,
                                 content_type="audio/wav"), 404, "not_found")

    def test_deleting_the_user_deletes_its_messages(self):
        self.create_user("103", "secret103")
        name = put_message(self.d, "103", "100", media.test_signal(1.0))
        path = os.path.join(self.d.dir, "voicemail", name)
        self.assertEqual(len(self.vm("103").json["items"]), 1)
        self.assertEqual(self.api("DELETE", "/api/v1/users/103").status, 204)
        self.assertFalse(os.path.exists(path), "the message's file outlived its user")
        self.create_user("103", "secret103")
        self.assertEqual(self.vm("103").json["items"], [])


class Retention(DaemonTest):
    """Messages older than voicemail_max_days go, and heard ones past voicemail_max_messages
    a mailbox (oldest first; new ones are never dropped for the quota), and files no row
    names (after a minute: they may be being written), all at the first retention run,
    five seconds after start."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(["--voicemail-max-days", "30", "--voicemail-max-messages", "2"])
        cls.token = cls.d.create_token("tests")
        cls.create_user("100", "secret100")
        cls.create_user("101", "secret101")

    def test_retention(self):
        d = self.d
        keep = [put_message(d, "100", "101", [1000] * 800, age_days=1),
                put_message(d, "100", "101", [1000] * 800, heard=1, age_days=2),
                put_message(d, "101", "100", [1000] * 800, age_days=3),
                put_message(d, "101", "100", [1000] * 800, age_days=4),
                put_message(d, "101", "100", [1000] * 800, age_days=5)]
        gone = [put_message(d, "100", "101", [1000] * 800, heard=1, age_days=3),
                put_message(d, "100", "101", [1000] * 800, age_days=31)]
        orphan = os.path.join(d.dir, "voicemail", "%032x.wav" % 7)
        fresh = os.path.join(d.dir, "voicemail", "%032x.wav" % 8)
        media.write_wav(orphan, [0] * 80)
        media.write_wav(fresh, [0] * 80)
        os.utime(orphan, (time.time() - 120, time.time() - 120))
        files = lambda: set(os.listdir(os.path.join(d.dir, "voicemail")))
        self.wait_for(lambda: not (set(gone) | {os.path.basename(orphan)}) & files(), 15,
                      "retention did not delete the old, the heard past the quota and the "
                      "orphan file")
        self.assertTrue(set(keep) <= files())
        self.assertIn(os.path.basename(fresh), files(), "a file being written was deleted")
        rows = sqlite3.connect(d.db).execute("SELECT file FROM voicemail_messages").fetchall()
        self.assertEqual(sorted(r[0] for r in rows), sorted(keep))
        self.assertEqual((self.api("GET", "/api/v1/users/101/voicemail").json["new"]), 3)
        self.assertIn("voicemail: 1 message(s) deleted: older than 30 days", d.log())
        self.assertIn("heard, beyond the 2 a mailbox keeps", d.log())


if __name__ == "__main__":
    apitest.main()
