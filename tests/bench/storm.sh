#!/bin/sh
# A 10,000-phone re-registration storm at 1,000/s, then 1,000 calls held up: the memory of
# sipbx and then of Kamailio (usrloc db_mode 2) in the same run (docs/performance.md):
#   tests/bench/storm.sh [--sipbx PATH] [--children N]
set -e
B="$(dirname "$0")/bench.py"
python3 "$B" storm --users 10000 --reg-rate 1000 --calls 1000 --call-rate 100 "$@"
python3 "$B" storm --server kamailio --db-mode 2 --users 10000 --reg-rate 1000 --calls 1000 \
    --call-rate 100 "$@"
