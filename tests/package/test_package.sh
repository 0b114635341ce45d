#!/bin/bash
# Checks the Debian package made by `make package`: metadata and contents, then runs the
# unpacked binary with the shipped configuration against a scratch state directory (it must
# start, answer OPTIONS and /api/v1/health, and stop cleanly), and verifies the systemd unit.
# Usage: test_package.sh DEB   (exit 77 = skipped: no package was built)
set -u
DEB=${1:-}
if [ -z "$DEB" ] || [ ! -f "$DEB" ]; then
    echo "SKIP: no package at '$DEB' (make test builds it with make package first)"
    exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

info=$(dpkg-deb -I "$DEB") || fail "dpkg-deb -I cannot read $DEB"
for field in "Package: sipbx" "Architecture: amd64" "Section: net"; do
    grep -q "^ $field" <<<"$info" || fail "control lacks '$field'"
done
grep -q "^ Version: [0-9]" <<<"$info" || fail "no version"
for dep in libsofia-sip-ua0 libmicrohttpd12 libsqlite3-0 libcjson1 libcrypt1 adduser; do
    grep -q "^ Depends:.*$dep" <<<"$info" || fail "Depends lacks $dep"
done
ok "control fields and dependencies"
ctrl=$(mktemp -d)
trap 'rm -rf "$ctrl" "${root:-}"; [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null' EXIT
dpkg-deb -e "$DEB" "$ctrl"
grep -qx /etc/sipbx/sipbx.conf "$ctrl/conffiles" || fail "sipbx.conf is not a conffile"
for s in postinst prerm postrm; do
    [ -x "$ctrl/$s" ] || fail "maintainer script $s missing or not executable"
    sh -n "$ctrl/$s" || fail "$s has a syntax error"
done
grep -q "adduser --system" "$ctrl/postinst" || fail "postinst does not create the sipbx user"
ok "conffiles and maintainer scripts"

files=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in ./usr/sbin/sipbx ./etc/sipbx/sipbx.conf ./lib/systemd/system/sipbx.service \
         ./usr/share/man/man8/sipbx.8.gz ./usr/share/sipbx/web/ ./usr/share/doc/sipbx/README.md \
         ./usr/share/doc/sipbx/openapi.json ./usr/share/sipbx/grafana/sipbx-dashboard.json; do
    grep -qx "$f" <<<"$files" || fail "package lacks $f"
done
ok "package contents"

root=$(mktemp -d)
dpkg-deb -x "$DEB" "$root"
zcat "$root/usr/share/man/man8/sipbx.8.gz" | grep -q '^.TH SIPBX 8' || fail "man page unreadable"
# Every key in the shipped file must be one the binary knows: start it with that file.
free_port() { python3 -c 'import socket
for _ in range(50):
    u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); t=socket.socket()
    try:
        u.bind(("127.0.0.1",0)); p=u.getsockname()[1]; t.bind(("127.0.0.1",p)); print(p); break
    except OSError: pass
    finally: u.close(); t.close()'; }
SIP=$(free_port); HTTP=$(free_port); HTTPS=$(free_port)
mkdir -p "$root/state"
# The shipped file turns HTTPS on: it must stay on, moved to a free loopback port.
grep -q '^https = ' "$root/etc/sipbx/sipbx.conf" || fail "the shipped sipbx.conf does not turn HTTPS on"
sed -e "s|^db = .*|db = $root/state/sipbx.db|" \
    -e "s|^web_root = .*|web_root = $root/usr/share/sipbx/web|" \
    -e "s|^https = .*|https = 127.0.0.1:$HTTPS|" \
    "$root/etc/sipbx/sipbx.conf" > "$root/test.conf"
printf 'sip = 127.0.0.1:%s\nhttp = 127.0.0.1:%s\ndomain = 127.0.0.1\n' "$SIP" "$HTTP" >> "$root/test.conf"
"$root/usr/sbin/sipbx" serve --config "$root/test.conf" > "$root/out.log" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q "REST API" "$root/out.log" && break; sleep 0.1; done
grep -q "admin account created" "$root/out.log" || { cat "$root/out.log"; fail "no first-start admin password"; }
python3 - "$SIP" <<'PY' || fail "no 200 to OPTIONS"
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); s.bind(("127.0.0.1", 0))
lp = s.getsockname()[1]
msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bKpkg1\r\n"
       f"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: pkg-probe\r\n"
       f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
s.sendto(msg.encode(), ("127.0.0.1", port))
data = s.recv(65535).decode()
sys.exit(0 if data.startswith("SIP/2.0 200") and "Allow:" in data else 1)
PY
ok "OPTIONS answered 200 with Allow"
code=$(curl -s -o "$root/health.json" -w '%{http_code}' "http://127.0.0.1:$HTTP/api/v1/health")
[ "$code" = 200 ] || fail "health answered $code"
ok "health answered 200"
# HTTPS with the certificate generated at first start in the state directory, pinned.
cert="$root/state/tls/cert.pem"
[ -s "$cert" ] || fail "no generated certificate at $cert"
[ "$(stat -c %a "$root/state/tls/key.pem")" = 600 ] || fail "the generated key is not 0600"
grep -q "HTTPS certificate: SHA-256 fingerprint" "$root/out.log" || fail "no fingerprint in the banner"
grep -q "Dashboard: https://127.0.0.1:$HTTPS/" "$root/out.log" || fail "the banner does not show the HTTPS dashboard"
code=$(curl -s --cacert "$cert" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$HTTPS/api/v1/health")
[ "$code" = 200 ] || fail "health over HTTPS answered $code"
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$HTTP/")
[ "$code" = "301 https://127.0.0.1:$HTTPS/" ] || fail "plain HTTP / answered '$code', not a redirect to HTTPS"
ok "HTTPS with the generated certificate; plain HTTP redirects"
# The API description the package installs is the one the daemon serves (over HTTPS: the
# shipped configuration keeps the API off plain HTTP).
curl -sf --cacert "$cert" -o "$root/served.json" "https://127.0.0.1:$HTTPS/api/v1/openapi.json" ||
    fail "GET /api/v1/openapi.json failed"
cmp -s "$root/served.json" "$root/usr/share/doc/sipbx/openapi.json" ||
    fail "the installed openapi.json is not the one the daemon serves"
ok "openapi.json installed and served"
kill -TERM "$pid"
wait "$pid"; rc=$?
pid=
[ "$rc" = 0 ] || { cat "$root/out.log"; fail "exit status $rc after SIGTERM"; }
[ -s "$root/state/sipbx.db" ] || fail "no database in the state directory"
ok "stopped cleanly with status 0"

if command -v systemd-analyze >/dev/null 2>&1; then
    # Verified in place: the binary and man page are not installed on this machine, so those
    # two findings are expected; anything else (an unknown key, a bad value) fails the test.
    out=$(systemd-analyze verify "$root/lib/systemd/system/sipbx.service" 2>&1 |
          grep -v "Command /usr/sbin/sipbx is not executable" | grep -v "man sipbx(8)")
    [ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify found problems"; }
    ok "systemd-analyze verify"
else
    echo "note: systemd-analyze not installed, unit not verified"
fi
echo "1 passed, 0 failed"
