#!/bin/bash
# Run stestr and end with a plain "N passed, N failed, N skipped" line that
# CI can count. Arguments are passed to "stestr run".
set -u
stestr run "$@"
rc=$?
stestr last --subunit | python "$(dirname "$0")/subunit-summary.py"
exit $rc
