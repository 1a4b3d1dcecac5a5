"""Read a subunit v2 stream on stdin; print "N passed, N failed, N skipped".

stestr's own totals are multi-line; CI and people want one plain line.
"""

import collections
import sys

import subunit
import testtools


def main() -> int:
    counts = collections.Counter()

    def on_test(test):
        status = test['status']
        if status in ('success', 'xfail'):
            counts['passed'] += 1
        elif status == 'skip':
            counts['skipped'] += 1
        elif status in ('fail', 'uxsuccess'):
            counts['failed'] += 1

    stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer,
                                              non_subunit_name='stdout')
    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    try:
        stream.run(result)
    finally:
        result.stopTestRun()
    print(f"{counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['skipped']} skipped")
    return 0


if __name__ == '__main__':
    sys.exit(main())
