"""Media for the voicemail tests: G.711 as ITU-T's reference (G.191) computes it, RTP packets
(audio and RFC 4733 telephone-events), pcap files SIPp plays (play_pcap_audio), WAV files,
a deterministic test signal, and an RTP peer on loopback that sends in 20 ms packets and
keeps everything it receives with its arrival time. Standard library only (the audioop
module is gone from Python 3.13)."""

import math
import random
import socket
import struct
import threading
import time
import wave

HOST = "127.0.0.1"
RATE = 8000
FRAME = 160  # samples of a 20 ms packet
PCMU, PCMA = 0, 8


# ---------------------------------------------------------------------------------------------
# G.711

def ulaw(x):
    """mu-law code of a 16-bit sample (G.191 ulaw_compress)."""
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    absno = min(absno, 0x1FFF)
    i, seg = absno >> 6, 1
    while i:
        seg += 1
        i >>= 1
    low = (0x0F - ((absno >> seg) & 0x0F)) | ((8 - seg) << 4)
    return low | 0x80 if x >= 0 else low


def alaw(x):
    """A-law code of a 16-bit sample (G.191 alaw_compress)."""
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if x >= 0:
        ix |= 0x80
    return ix ^ 0x55


def ulaw_to_linear(u):
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return 0x84 - t if u & 0x80 else t - 0x84


def alaw_to_linear(a):
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


ENCODE = {PCMU: ulaw, PCMA: alaw}
DECODE = {PCMU: [ulaw_to_linear(c) for c in range(256)],
          PCMA: [alaw_to_linear(c) for c in range(256)]}


def encode(samples, law=PCMU):
    f = ENCODE[law]
    return bytes(f(max(-32768, min(32767, int(s)))) for s in samples)


def decode(codes, law=PCMU):
    table = DECODE[law]
    return [table[c] for c in codes]


# ---------------------------------------------------------------------------------------------
# signals and files

def test_signal(seconds, seed=1):
    """Speech-like enough to be loud throughout and unambiguous to find: three tones whose
    levels wander, with a little noise; deterministic for a seed."""
    rnd = random.Random(seed)
    n = int(seconds * RATE)
    out = []
    f = (300 + 40 * seed, 730, 1510)
    for i in range(n):
        t = i / RATE
        env = 0.6 + 0.4 * math.sin(2 * math.pi * 0.7 * t + seed)
        v = env * (6000 * math.sin(2 * math.pi * f[0] * t) + 3000 * math.sin(2 * math.pi * f[1] * t)
                   + 1500 * math.sin(2 * math.pi * f[2] * t)) + rnd.uniform(-300, 300)
        out.append(int(v))
    return out


def write_wav(path, samples, rate=RATE, channels=1):
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", max(-32768, min(32767, int(s))))
                               for s in samples))


def wav_bytes(samples, rate=RATE, channels=1):
    """A WAV file of 16-bit samples (interleaved when channels > 1), as bytes."""
    data = b"".join(struct.pack("<h", max(-32768, min(32767, int(s)))) for s in samples)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) +
            fmt + b"data" + struct.pack("<I", len(data)) + data)


def read_wav(path):
    """(rate, channels, bits, samples) of a PCM WAV file."""
    with wave.open(path, "rb") as w:
        frames = w.readframes(w.getnframes())
        assert w.getsampwidth() == 2
        return (w.getframerate(), w.getnchannels(), 16,
                list(struct.unpack("<%dh" % (len(frames) // 2), frames)))


def rtp_packet(pt, seq, ts, ssrc, payload, marker=False):
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def parse_rtp(data):
    """The fields of an RTP packet (no CSRC or extensions expected from sipbx), or None."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    return {"pt": b1 & 0x7F, "marker": bool(b1 & 0x80), "seq": seq, "ts": ts, "ssrc": ssrc,
            "payload": data[12 + 4 * (b0 & 0x0F):], "cc": b0 & 0x0F}


def dtmf_packets(digit, pt, seq, ts, ssrc, duration=160 * 8):
    """An RFC 4733 event: three packets while the key is down, three end packets; one
    timestamp. Returns (packets, next seq)."""
    code = "0123456789*#ABCD".index(digit)
    out = []
    for k in range(3):
        out.append(rtp_packet(pt, seq, ts, ssrc, struct.pack("!BBH", code, 10, 160 * (k + 1)),
                              marker=k == 0))
        seq += 1
    for _ in range(3):
        out.append(rtp_packet(pt, seq, ts, ssrc, struct.pack("!BBH", code, 0x80 | 10, duration)))
        seq += 1
    return out, seq


def write_pcap(path, packets, start=0.0, sport=6000, dport=6002):
    """A pcap (Ethernet, IPv4, UDP) of RTP packets [(seconds, bytes)] as SIPp's
    play_pcap_audio reads it (it sends each payload from its media port to the remote's,
    keeping the recorded spacing)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, rtp in packets:
            udp = struct.pack("!HHHH", sport, dport, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                             socket.inet_aton(HOST), socket.inet_aton(HOST))
            csum = 0
            for i in range(0, 20, 2):
                csum += (ip[i] << 8) | ip[i + 1]
            csum = (csum & 0xFFFF) + (csum >> 16)
            csum = ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF
            ip = ip[:10] + struct.pack("!H", csum) + ip[12:]
            frame = b"\x00\x11\x22\x33\x44\x55" * 2 + b"\x08\x00" + ip + udp
            sec = start + t
            f.write(struct.pack("<IIII", int(sec), int((sec - int(sec)) * 1e6), len(frame),
                                len(frame)))
            f.write(frame)


def audio_packets(samples, law=PCMU, ssrc=0x5EED, seq=1000, ts=160000):
    """[(seconds, packet)] of samples in 20 ms packets."""
    codes = encode(samples, law)
    out = []
    for k in range(0, len(codes) // FRAME):
        out.append((k * 0.02, rtp_packet(law, seq + k, ts + k * FRAME, ssrc,
                                         codes[k * FRAME:(k + 1) * FRAME], marker=k == 0)))
    return out


def sdp(port, pts=(0, 8, 101), te=101):
    """An SDP offer for media on HOST:port with payload types pts (telephone-event as te)."""
    names = {0: "PCMU/8000", 8: "PCMA/8000", te: "telephone-event/8000"}
    lines = ["v=0", "o=- 1 1 IN IP4 %s" % HOST, "s=-", "c=IN IP4 %s" % HOST, "t=0 0",
             "m=audio %d RTP/AVP %s" % (port, " ".join(map(str, pts)))]
    lines += ["a=rtpmap:%d %s" % (p, names[p]) for p in pts if p in names]
    if te in pts:
        lines.append("a=fmtp:%d 0-16" % te)
    return "\r\n".join(lines + ["a=ptime:20", "a=sendrecv", ""])


def is_tone(samples, hz):
    """True when samples are (nearly) all one sine of hz: its energy by Goertzel's algorithm
    holds more than 90% of theirs."""
    total = sum(x * x for x in samples)
    if total < len(samples) * 1000 ** 2:
        return False
    k = 2 * math.cos(2 * math.pi * hz / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    power = (s1 * s1 + s2 * s2 - k * s1 * s2) * 2 / len(samples)
    return power > 0.9 * total


def find(haystack, needle):
    """Index of needle (a bytes of G.711 codes) in haystack, or -1."""
    return haystack.find(needle)


# ---------------------------------------------------------------------------------------------
# an RTP peer

class RtpPeer:
    """A UDP socket on loopback that keeps every RTP packet it receives (with its arrival
    time) and sends audio in 20 ms packets or RFC 4733 key presses, to the address sipbx's
    SDP named (set_remote)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.remote = None
        self.received = []  # (monotonic seconds, parsed packet, source)
        self.lock = threading.Lock()
        self.closed = False
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(15)
        self.ts = random.getrandbits(31)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        self.sock.settimeout(0.2)
        while not self.closed:
            try:
                data, src = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            p = parse_rtp(data)
            if p:
                with self.lock:
                    self.received.append((time.monotonic(), p, src))

    def set_remote(self, sdp_text):
        """Takes the address and port of sipbx's SDP."""
        import re
        c = re.search(r"c=IN IP4 (\S+)", sdp_text)
        m = re.search(r"m=audio (\d+)", sdp_text)
        self.remote = (c.group(1), int(m.group(1)))

    def packets(self):
        with self.lock:
            return list(self.received)

    def codes(self, pt=None):
        """The payloads received, in timestamp order (of the one stream there is), joined."""
        pk = [p for _, p, _ in self.packets() if pt is None or p["pt"] == pt]
        pk.sort(key=lambda p: (p["ts"] - pk[0]["ts"]) & 0xFFFFFFFF if pk else 0)
        return b"".join(p["payload"] for p in pk)

    def wait_for(self, needle, timeout, pt=None):
        """Waits until the received codes hold needle; returns its index or -1."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            i = self.codes(pt).find(needle)
            if i >= 0:
                return i
            time.sleep(0.1)
        return -1

    def wait_tone_end(self, timeout=20.0, hz=1000.0, quiet=3):
        """Waits until sipbx has played its tone (packets that are nearly all a sine of hz)
        and then quiet packets of silence (it is recording now). True when it did. The
        packet after the last one of pure tone may hold the tone's end (a greeting need not
        fill whole packets, so neither need the tone): it is let by."""
        deadline = time.monotonic() + timeout
        seen = 0  # packets looked at
        tone_at = None
        while time.monotonic() < deadline:
            pk = [p for _, p, _ in self.packets() if p["pt"] in DECODE]
            for i in range(seen, len(pk)):
                if is_tone(decode(pk[i]["payload"], pk[i]["pt"]), hz):
                    tone_at = i
            seen = len(pk)
            after = pk[tone_at + 2:] if tone_at is not None else []
            if len(after) >= quiet and all(
                    max(map(abs, decode(p["payload"], p["pt"]))) < 100 for p in after):
                return True
            time.sleep(0.02)
        return False

    def send_audio(self, samples, law=PCMU, pace=True):
        """Sends samples in 20 ms packets (paced in real time unless pace is False);
        sent_at is then when the first one left (time.monotonic())."""
        codes = encode(samples, law)
        start = self.sent_at = time.monotonic()
        for k in range(len(codes) // FRAME):
            pkt = rtp_packet(law, self.seq, self.ts, self.ssrc, codes[k * FRAME:(k + 1) * FRAME])
            self.sock.sendto(pkt, self.remote)
            self.seq += 1
            self.ts += FRAME
            if pace:
                delay = start + (k + 1) * 0.02 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def send_dtmf(self, digit, pt=101):
        pkts, self.seq = dtmf_packets(digit, pt, self.seq, self.ts, self.ssrc)
        for p in pkts:
            self.sock.sendto(p, self.remote)
            time.sleep(0.02)
        self.ts += 160 * 8

    def close(self):
        self.closed = True
        self.thread.join(timeout=2)
        self.sock.close()
