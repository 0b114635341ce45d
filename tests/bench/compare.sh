#!/bin/sh
# sipbx against Kamailio with usrloc db_mode 1 and db_mode 2, one after the other in one run,
# with ratios and the peak memory of each (see bench.py and docs/performance.md):
#   tests/bench/compare.sh --compare register|call [--rounds N] [--sipbx PATH] ...
exec python3 "$(dirname "$0")/bench.py" compare "$@"
