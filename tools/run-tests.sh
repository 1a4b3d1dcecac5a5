#!/bin/bash
# Install tox if needed, run the style, layer and type checks (pep8,
# mypy), then the unit, functional, interop and reliability tests, and end
# with a single "N passed, N failed, N skipped" line totalling them. The
# reliability env stops and starts the local RabbitMQ, so it runs last,
# alone.
set -u
cd "$(dirname "$0")/.."
if ! python3 -m tox --version >/dev/null 2>&1; then
    python3 -m pip install --quiet 'tox>=4' || exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
python3 -m tox -e pep8,mypy,py3,functional,interop,reliability "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
python3 - "$log" "$rc" <<'PY'
import re
import sys

passed = failed = skipped = 0
runs = 0
with open(sys.argv[1], errors='replace') as f:
    for line in f:
        m = re.fullmatch(r'(\d+) passed, (\d+) failed, (\d+) skipped\s*',
                         line)
        if m:
            runs += 1
            passed += int(m[1])
            failed += int(m[2])
            skipped += int(m[3])
if sys.argv[2] != '0':
    # A check (pep8, mypy) failed, or an environment failed before its
    # tests could report: never print a clean summary for a failed run.
    failed = max(failed, 1)
print(f'{passed} passed, {failed} failed, {skipped} skipped')
PY
exit "$rc"
