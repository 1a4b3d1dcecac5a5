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

"""Tests for doctor_plugin.common.retry.call, as its callers use it."""

from doctor_plugin.common import retry
from doctor_plugin.tests import base


class Flaky:
    """Fails with ``errors`` in turn, then returns 'ok'."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return 'ok'


class TestCall(base.TestCase):

    def setUp(self):
        super().setUp()
        self.waits = []

    def call(self, fn, **kwargs):
        kwargs.setdefault('backoff', retry.Backoff(0.05, 1.0, jitter=False))
        kwargs.setdefault('retry_if', lambda e: isinstance(e, OSError))
        return retry.call(fn, sleep=self.waits.append, **kwargs)

    def test_first_success_does_not_wait(self):
        fn = Flaky()
        self.assertEqual('ok', self.call(fn))
        self.assertEqual((1, []), (fn.calls, self.waits))

    def test_waits_double_up_to_the_maximum(self):
        fn = Flaky(*[OSError()] * 6)
        self.assertEqual('ok', self.call(fn))
        self.assertEqual([0.05, 0.1, 0.2, 0.4, 0.8, 1.0], self.waits)

    def test_attempts_bound_the_tries(self):
        fn = Flaky(OSError('1'), OSError('2'), OSError('3'))
        exc = self.assertRaises(OSError, self.call, fn, attempts=3)
        self.assertEqual('3', str(exc))
        self.assertEqual(3, fn.calls)
        self.assertEqual(2, len(self.waits))

    def test_other_errors_are_not_retried(self):
        fn = Flaky(ValueError('no'))
        self.assertRaises(ValueError, self.call, fn)
        self.assertEqual((1, []), (fn.calls, self.waits))

    def test_wait_hint_lengthens_a_wait(self):
        class Limited(OSError):
            retry_after = 0.7

        fn = Flaky(Limited(), OSError())
        self.call(fn, wait_hint=lambda e: getattr(e, 'retry_after', 0.0))
        self.assertEqual([0.7, 0.1], self.waits)

    def test_before_sleep_sees_each_failed_attempt(self):
        seen = []
        fn = Flaky(OSError(), OSError())
        self.call(fn, before_sleep=lambda n, e, w: seen.append((n, w)))
        self.assertEqual([(1, 0.05), (2, 0.1)], seen)

    def test_jitter_keeps_a_wait_between_half_and_its_ceiling(self):
        backoff = retry.Backoff(0.5, 30.0)
        for attempt in range(1, 10):
            ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
            for _ in range(20):
                self.assertTrue(ceiling / 2 <= backoff.delay(attempt)
                                <= ceiling)
