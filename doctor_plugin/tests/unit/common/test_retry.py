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

"""Tests of the one retry policy."""

import time

from oslotest import base

from doctor_plugin.common import retry


class Flaky:
    """Fails with the given exceptions, one per call, then returns 'ok'."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return 'ok'


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


def transient(exc: BaseException) -> bool:
    return isinstance(exc, Transient)


class BackoffTest(base.BaseTestCase):

    def test_waits_double_up_to_the_maximum(self):
        backoff = retry.Backoff(0.5, 3.0, jitter=False)
        self.assertEqual([0.5, 1.0, 2.0, 3.0, 3.0],
                         [backoff.delay(n) for n in range(1, 6)])

    def test_first_at_once_retries_once_without_waiting(self):
        # The webhook POST's waits, as urllib3's were.
        backoff = retry.Backoff(0.1, 120.0, jitter=False, first_at_once=True)
        self.assertEqual([0.0, 0.2, 0.4, 0.8],
                         [backoff.delay(n) for n in range(1, 5)])

    def test_a_huge_attempt_number_gives_the_maximum(self):
        backoff = retry.Backoff(1.0, 60.0, jitter=False)
        self.assertEqual(60.0, backoff.delay(10_000))
        self.assertEqual(60.0, backoff.ceiling(65))

    def test_jitter_stays_between_half_the_ceiling_and_the_ceiling(self):
        backoff = retry.Backoff(1.0, 8.0)
        for attempt in (1, 2, 3, 4, 9):
            ceiling = backoff.ceiling(attempt)
            waits = {backoff.delay(attempt) for _ in range(200)}
            self.assertTrue(all(ceiling / 2 <= w <= ceiling for w in waits),
                            waits)
            # Jittered: not all the same.
            self.assertGreater(len(waits), 1)

    def test_zero_initial_never_waits(self):
        backoff = retry.Backoff(0.0, 10.0)
        self.assertEqual(0.0, backoff.delay(5))

    def test_refuses_negative_or_inverted_bounds(self):
        self.assertRaises(ValueError, retry.Backoff, -1.0, 1.0)
        self.assertRaises(ValueError, retry.Backoff, 2.0, 1.0)

    def test_is_a_tenacity_wait(self):
        class State:
            attempt_number = 3
        self.assertEqual(4.0, retry.Backoff(1.0, 10.0, jitter=False)(State()))


class CallTest(base.BaseTestCase):

    def setUp(self):
        super().setUp()
        self.slept = []
        self.backoff = retry.Backoff(1.0, 4.0, jitter=False)

    def call(self, fn, **kwargs):
        kwargs.setdefault('backoff', self.backoff)
        kwargs.setdefault('retry_if', transient)
        return retry.call(fn, sleep=self.slept.append, **kwargs)

    def test_success_at_once_neither_retries_nor_sleeps(self):
        fn = Flaky()
        self.assertEqual('ok', self.call(fn))
        self.assertEqual(1, fn.calls)
        self.assertEqual([], self.slept)

    def test_retries_with_the_backoff_waits_until_success(self):
        fn = Flaky(Transient(), Transient(), Transient(), Transient())
        self.assertEqual('ok', self.call(fn))
        self.assertEqual(5, fn.calls)
        self.assertEqual([1.0, 2.0, 4.0, 4.0], self.slept)

    def test_attempts_bound_all_the_tries(self):
        fn = Flaky(*[Transient(str(n)) for n in range(10)])
        exc = self.assertRaises(Transient, self.call, fn, attempts=3)
        self.assertEqual(3, fn.calls)
        self.assertEqual('2', str(exc))  # the last failure is raised
        self.assertEqual([1.0, 2.0], self.slept)

    def test_one_attempt_means_no_retry(self):
        fn = Flaky(Transient())
        self.assertRaises(Transient, self.call, fn, attempts=1)
        self.assertEqual(1, fn.calls)
        self.assertEqual([], self.slept)

    def test_refused_exception_is_raised_at_once(self):
        fn = Flaky(Fatal())
        self.assertRaises(Fatal, self.call, fn, attempts=5)
        self.assertEqual(1, fn.calls)
        self.assertEqual([], self.slept)

    def test_refused_exception_after_retries_is_raised(self):
        fn = Flaky(Transient(), Fatal(), Transient())
        self.assertRaises(Fatal, self.call, fn, attempts=5)
        self.assertEqual(2, fn.calls)
        self.assertEqual([1.0], self.slept)

    def test_wait_hint_lengthens_a_wait_but_never_shortens_it(self):
        fn = Flaky(Transient('7'), Transient('0.1'), Transient('3'))

        def hint(exc):
            return float(str(exc))
        self.assertEqual('ok', self.call(fn, wait_hint=hint))
        self.assertEqual([7.0, 2.0, 4.0], self.slept)

    def test_before_sleep_sees_attempt_exception_and_wait(self):
        failures = [Transient('a'), Transient('b')]
        fn = Flaky(*failures)
        seen = []
        self.call(fn, before_sleep=lambda *args: seen.append(args))
        self.assertEqual([(1, failures[0], 1.0), (2, failures[1], 2.0)],
                         seen)

    def test_returns_the_result_of_a_late_success(self):
        results = iter([Transient(), 42])

        def fn():
            value = next(results)
            if isinstance(value, Exception):
                raise value
            return value
        self.assertEqual(42, self.call(fn))

    def test_deadline_stops_the_retries_and_bounds_the_waits(self):
        # Real time: the deadline is measured on the monotonic clock.
        slept = []

        def sleep(delay):
            slept.append(delay)
            time.sleep(delay)
        fn = Flaky(*[Transient() for _ in range(100)])
        started = time.monotonic()
        self.assertRaises(Transient, retry.call, fn,
                          backoff=retry.Backoff(0.04, 0.04, jitter=False),
                          retry_if=transient, deadline=0.15, sleep=sleep)
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.15)
        self.assertLess(elapsed, 1.0)
        self.assertLess(fn.calls, 10)
        self.assertGreaterEqual(fn.calls, 3)
        # No wait runs past the deadline: the last one is cut short.
        self.assertLessEqual(sum(slept), 0.15 + 0.01)
        self.assertLess(slept[-1], 0.04)

    def test_deadline_already_spent_after_the_first_try(self):
        def slow():
            time.sleep(0.02)
            raise Transient()
        self.assertRaises(Transient, self.call, slow, deadline=0.01)
        self.assertEqual([], self.slept)

    def test_a_sleep_that_raises_ends_the_retries(self):
        class Stopped(Exception):
            pass

        def sleep(delay):
            raise Stopped()
        fn = Flaky(Transient(), Transient())
        self.assertRaises(Stopped, retry.call, fn, backoff=self.backoff,
                          retry_if=transient, sleep=sleep)
        self.assertEqual(1, fn.calls)
