# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

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
