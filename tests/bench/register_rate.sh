#!/bin/sh
# Loopback benchmark: see bench.py (and docs/performance.md) for the method and options.
#   tests/bench/register_rate.sh [--server sipbx|kamailio] [--trace on|off] [--sipbx PATH] ...
exec python3 "$(dirname "$0")/bench.py" register "$@"
