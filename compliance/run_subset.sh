#!/usr/bin/env bash
# Run a fast subset of the Autobahn|Testsuite client cases against lomond and
# fail unless every case is OK (or one of the suite's INFORMATIONAL cases).
#
# Usage: compliance/run_subset.sh [CASES]
#
# CASES defaults to SUBSET below (under a minute on a 2-core machine). The
# suite comes from AUTOBAHN_DIR (default: ../shared/autobahn next to the
# repository). When the fuzzingserver's virtualenv AUTOBAHN_VENV (default
# /tmp/autobahn-venv) is missing, the suite's setup.sh builds it from PyPI.
# PYTHON is the interpreter with lomond installed (default: python3).
# Exit status: 0 all cases passed, 1 a case did not pass, 2 the suite is
# missing or could not run.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
AUTOBAHN_DIR="${AUTOBAHN_DIR:-$ROOT/../shared/autobahn}"
export AUTOBAHN_VENV="${AUTOBAHN_VENV:-/tmp/autobahn-venv}"
PYTHON="${PYTHON:-python3}"

# Every section except 9 (limits and performance, minutes of large
# messages) and most of 12/13 (1000 compressed messages per case): the
# first five cases of each compression section keep their messages small.
SUBSET="1.*,2.*,3.*,4.*,5.*,6.*,7.*,10.*,9.1.1,9.2.1"
for section in 12.1 12.2 12.3 12.4 12.5 13.1 13.2 13.3 13.4 13.5 13.6 13.7; do
    SUBSET="$SUBSET,$section.1,$section.2,$section.3,$section.4,$section.5"
done
CASES="${1:-$SUBSET}"

if [ ! -f "$AUTOBAHN_DIR/run-client.sh" ]; then
    echo "run_subset: no Autobahn|Testsuite runner at $AUTOBAHN_DIR (set AUTOBAHN_DIR)" >&2
    exit 2
fi
if [ ! -x "$AUTOBAHN_VENV/bin/wstest" ]; then
    echo "run_subset: building the fuzzingserver in $AUTOBAHN_VENV" >&2
    bash "$AUTOBAHN_DIR/setup.sh" >&2 || { echo "run_subset: setup.sh failed" >&2; exit 2; }
fi

OUTDIR="$(mktemp -d "${TMPDIR:-/tmp}/lomond-autobahn.XXXXXX")"
trap 'rm -rf "$OUTDIR"' EXIT

# Bounds: a stuck client is killed after 60 s without a new case, and the
# whole run after 5 minutes.
IDLE_TIMEOUT=60 CASE_TIMEOUT=60 RUN_TIMEOUT=300 \
    bash "$AUTOBAHN_DIR/run-client.sh" "$PYTHON $HERE/testee.py" "$OUTDIR" "$CASES" | tail -3

"$PYTHON" - "$OUTDIR/summary.json" "$OUTDIR/server.log" <<'EOF'
import json
import re
import sys

# Informational for every client: the suite records what happens and
# judges nothing (see docs/conformance.md).
INFORMATIONAL = {"7.1.6", "7.13.1", "7.13.2"}

try:
    with open(sys.argv[1]) as summary_file:
        summary = json.load(summary_file)
except (OSError, ValueError) as error:
    sys.exit(f"run_subset: no results ({error})")
bad = []
total = 0
for agent, cases in summary.items():
    for case, behaviour in sorted(cases.items()):
        total += 1
        if behaviour == "OK" or (behaviour == "INFORMATIONAL" and case in INFORMATIONAL):
            continue
        bad.append(f"{case}: {behaviour}")
if total == 0:
    sys.exit("run_subset: no case ran")

# The fuzzingserver logs the cases it selected; each must have a result.
with open(sys.argv[2], errors="replace") as log_file:
    match = re.search(r"^Cases = \[(.*)\]$", log_file.read(), re.M)
selected = [case.strip().strip("'\"") for case in match.group(1).split(",")] if match else []
ran = {case for cases in summary.values() for case in cases}
bad += [f"{case}: MISSING" for case in selected if case not in ran]
if bad:
    print(f"run_subset: {len(bad)} of {total} cases did not pass:", *bad, sep="\n  ")
    sys.exit(1)
print(f"run_subset: all {total} cases passed")
EOF
