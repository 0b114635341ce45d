#!/bin/sh
# Call record queries on a large table, through the running daemon: fills a scratch database
# with ROWS call records (default 1,000,000, spread over the past year, in one transaction
# of plain SQL), starts `sipbx serve` on it and times with curl the first page of
# GET /api/v1/cdrs, a filtered page (ext + disposition), a page deep in the cursor chain,
# pages sorted by talk time and by caller, searches (a name, a Call-ID), the total count,
# the summary for a day and for a year, the per-extension statistics of 30 days, and the
# full CSV export.
#
#   tests/bench/cdr_query.sh [SIPBX] [ROWS]      (SIPBX default: build/sipbx)
#
# Needs sqlite3 and curl. Not a ctest test: filling the table takes a while. Each figure is
# the median of RUNS runs (default 5; the export runs 3 times). Results go to stdout as a
# Markdown table for docs/performance.md.
set -eu

SIPBX=${1:-build/sipbx}
ROWS=${2:-1000000}
RUNS=${RUNS:-5}
HOST=127.0.0.1

[ -x "$SIPBX" ] || { echo "cdr_query: no sipbx binary at $SIPBX" >&2; exit 2; }
for t in sqlite3 curl; do
    command -v $t >/dev/null || { echo "cdr_query: $t is needed" >&2; exit 2; }
done

DIR=$(mktemp -d /tmp/sipbx-cdr-bench-XXXXXX)
DB=$DIR/sipbx.db
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
    SIP_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    "$SIPBX" serve --db "$DB" --domain $HOST --sip $HOST:"$SIP_PORT" \
        --http $HOST:"$HTTP_PORT" >"$DIR/stdout" 2>"$DIR/stderr" &
    PID=$!
    i=0
    until curl -fs "http://$HOST:$HTTP_PORT/api/v1/health" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 100 ] && { cat "$DIR/stderr" >&2; exit 1; }
        sleep 0.1
    done
}

stop() {
    kill "$PID"
    wait "$PID" || true
    PID=
}

# 1. An empty, migrated database (the daemon creates it), then the records in one
#    transaction: a year back from now, callers and callees among 200 extensions,
#    dispositions in the proportions of a busy office, talk time up to 10 minutes.
start
stop
NOW_US=$(($(date +%s) * 1000000))
YEAR_US=$((365 * 86400 * 1000000))
echo "filling $ROWS records ..." >&2
FILL_START=$(date +%s.%N)
sqlite3 "$DB" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS),
r AS (SELECT i,
             $NOW_US - $YEAR_US + abs(random()) % $YEAR_US AS start_us,
             100 + abs(random()) % 200 AS caller,
             100 + abs(random()) % 200 AS dialled,
             abs(random()) % 100 AS d,
             abs(random()) % 600 AS talk,
             abs(random()) % 30 AS ring
      FROM n)
INSERT INTO cdrs (call_id, caller, caller_name, dialled, answered_by, start_us, answer_us,
                  end_us, duration, billsec, disposition, status, phrase, hangup_by,
                  user_agent)
SELECT printf('%08x%08x@bench', i, abs(random()) % 4294967296), caller, 'User ' || caller,
       dialled,
       CASE WHEN d < 60 THEN dialled ELSE '' END,
       start_us,
       CASE WHEN d < 60 THEN start_us + ring * 1000000 END,
       start_us + (ring + CASE WHEN d < 60 THEN talk ELSE 0 END) * 1000000,
       ring + CASE WHEN d < 60 THEN talk ELSE 0 END,
       CASE WHEN d < 60 THEN talk ELSE 0 END,
       CASE WHEN d < 60 THEN 'ANSWERED' WHEN d < 70 THEN 'BUSY' WHEN d < 85 THEN 'NO ANSWER'
            WHEN d < 95 THEN 'CANCELLED' ELSE 'FAILED' END,
       CASE WHEN d < 60 THEN 200 WHEN d < 70 THEN 486 WHEN d < 85 THEN 408
            WHEN d < 95 THEN 487 ELSE 404 END,
       CASE WHEN d < 60 THEN 'OK' WHEN d < 70 THEN 'Busy Here' WHEN d < 85 THEN 'Request Timeout'
            WHEN d < 95 THEN 'Request Terminated' ELSE 'Not Found' END,
       CASE WHEN d < 60 AND talk % 2 = 0 THEN 'caller' WHEN d < 60 THEN 'callee'
            WHEN d < 70 THEN 'callee' WHEN d < 85 THEN 'sipbx' WHEN d < 95 THEN 'caller'
            ELSE 'sipbx' END,
       'MicroSIP/3.21.3'
FROM r;
COMMIT;
SQL
FILL_END=$(date +%s.%N)
echo "filled in $(awk "BEGIN { printf \"%.1f\", $FILL_END - $FILL_START }") s; $(du -h "$DB" | cut -f1) on disk" >&2

start
TOKEN=$("$SIPBX" token create bench --db "$DB" 2>/dev/null)
API="http://$HOST:$HTTP_PORT/api/v1"

# The median time_total of RUNS runs of a GET (after one warm-up run).
median() {
    url=$1
    runs=${2:-$RUNS}
    curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$url"
    i=0
    while [ $i -lt "$runs" ]; do
        curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$url"
        i=$((i + 1))
    done | sort -n | awk '{ t[NR] = $1 } END { printf "%.1f", t[int((NR + 1) / 2)] * 1000 }'
}

# A cursor of the record halfway down the newest-first order, as the server writes them
# (hex of "start_us:id"), so the deep page does not need 5,000 requests to reach.
MID=$((ROWS / 2))
DEEP=$(sqlite3 "$DB" "SELECT hex(start_us || ':' || id) FROM cdrs
                      ORDER BY start_us DESC, id DESC LIMIT 1 OFFSET $MID" | tr 'A-F' 'a-f')
EXT=$(sqlite3 "$DB" "SELECT caller FROM cdrs GROUP BY caller ORDER BY count(*) LIMIT 1")

FIRST=$(median "$API/cdrs?limit=100")
FILTERED=$(median "$API/cdrs?limit=100&ext=$EXT&disposition=ANSWERED")
RARE=$(median "$API/cdrs?limit=100&ext=$EXT&disposition=FAILED")
DEEPT=$(median "$API/cdrs?limit=100&cursor=$DEEP")
DEEPF=$(median "$API/cdrs?limit=100&cursor=$DEEP&ext=$EXT&disposition=ANSWERED")
SORTT=$(median "$API/cdrs?limit=100&sort=-talk")
SORTC=$(median "$API/cdrs?limit=100&sort=caller")
NAME=$(median "$API/cdrs?limit=100&q=User%20$EXT")
CID=$(median "$API/cdrs?limit=100&q=$(sqlite3 "$DB" "SELECT substr(call_id, 1, 12) FROM cdrs LIMIT 1 OFFSET $MID")")
NONE=$(median "$API/cdrs?limit=100&q=nobody-at-all")
COUNT=$(median "$API/cdrs?limit=100&count=true")
COUNTF=$(median "$API/cdrs?limit=100&count=true&ext=$EXT&disposition=ANSWERED")
STATS=$(median "$API/cdrs/stats?period=30d")
STATSE=$(median "$API/cdrs/stats?period=30d&ext=$EXT")
DAY=$(median "$API/cdrs/summary")
YEAR=$(median "$API/cdrs/summary?since=$(date -u -d '-365 days' +%Y-%m-%d)&bucket=86400")

# The whole table as CSV, three times; the daemon's peak memory afterwards.
CSV=$(curl -fsS -o /dev/null -w '%{time_total} %{size_download}\n' \
      -H "Authorization: Bearer $TOKEN" "$API/cdrs.csv")
CSVT=$(median "$API/cdrs.csv" 3)
CSVBYTES=${CSV#* }
CSVLINES=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$API/cdrs.csv" | wc -l)
HWM=$(awk '/VmHWM/ { print $2 / 1024 }' "/proc/$PID/status")

cat <<EOF
| query | median time |
| --- | --- |
| first page, \`GET /cdrs?limit=100\` | $FIRST ms |
| filtered page, \`ext=$EXT&disposition=ANSWERED\` | $FILTERED ms |
| filtered page, rare match, \`ext=$EXT&disposition=FAILED\` | $RARE ms |
| deep page (cursor of record $MID), no filter | $DEEPT ms |
| deep page (cursor of record $MID), \`ext=$EXT&disposition=ANSWERED\` | $DEEPF ms |
| sorted page, \`sort=-talk\` | $SORTT ms |
| sorted page, \`sort=caller\` | $SORTC ms |
| search by name, \`q=User $EXT\` | $NAME ms |
| search by the start of a Call-ID | $CID ms |
| search without a match | $NONE ms |
| first page with the total, \`count=true\` | $COUNT ms |
| filtered page with the total, \`ext=$EXT&disposition=ANSWERED&count=true\` | $COUNTF ms |
| \`GET /cdrs/stats?period=30d\` (every extension) | $STATS ms |
| \`GET /cdrs/stats?period=30d&ext=$EXT\` | $STATSE ms |
| \`GET /cdrs/summary\` (last 24 h, hourly) | $DAY ms |
| \`GET /cdrs/summary\` (a year, daily) | $YEAR ms |
| full CSV export, $((CSVLINES - 1)) records, $((CSVBYTES / 1048576)) MiB | $(awk "BEGIN { printf \"%.2f\", $CSVT / 1000 }") s |

Daemon peak resident memory after the exports: $(printf '%.0f' "$HWM") MiB.
EOF
