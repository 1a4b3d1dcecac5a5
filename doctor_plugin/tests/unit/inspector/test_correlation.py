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

"""Host state correlation: repeats dropped, flapping damped."""

import datetime
import threading

from doctor_plugin.inspector import correlation
from doctor_plugin.tests import base


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class TestHostStateTracker(base.TestCase):

    def setUp(self):
        super().setUp()
        self.set_opts(group='inspector', host_report_window=60.0,
                      flap_window=0.3, flap_threshold=4)
        self.clock = Clock()
        self.released = []
        self.done = threading.Event()
        self.tracker = correlation.HostStateTracker(
            self.conf, self.release, clock=self.clock)
        self.addCleanup(self.tracker.close)

    def release(self, item):
        self.released.append(item)
        self.done.set()

    def test_first_report_goes_out(self):
        self.assertTrue(self.tracker.admit('h1', 'down', 'e1'))
        self.assertEqual('down', self.tracker.state('h1'))

    def test_repeat_within_window_dropped_after_window_passes(self):
        self.assertTrue(self.tracker.admit('h1', 'down', 'e1'))
        self.clock.now += 59
        self.assertFalse(self.tracker.admit('h1', 'down', 'e2'))
        self.clock.now += 2
        self.assertTrue(self.tracker.admit('h1', 'down', 'e3'))

    def test_hosts_are_independent(self):
        self.assertTrue(self.tracker.admit('h1', 'down', 'e1'))
        self.assertTrue(self.tracker.admit('h2', 'down', 'e2'))

    def test_change_goes_out(self):
        self.assertTrue(self.tracker.admit('h1', 'down', 'e1'))
        self.assertTrue(self.tracker.admit('h1', 'up', 'e2'))
        self.assertTrue(self.tracker.admit('h1', 'down', 'e3'))
        self.assertEqual('down', self.tracker.state('h1'))

    def test_change_observed_before_the_current_state_is_stale(self):
        t = datetime.datetime(2026, 11, 25, 10, 0, 0)
        second = datetime.timedelta(seconds=1)
        self.assertTrue(self.tracker.admit('h1', 'down', 'e1', t))
        self.assertTrue(self.tracker.admit('h1', 'up', 'e2', t + 2 * second))
        # Seen down at t+1: older than the recovery seen at t+2.
        self.assertFalse(self.tracker.admit('h1', 'down', 'e3', t + second))
        self.assertEqual('up', self.tracker.state('h1'))
        self.assertTrue(self.tracker.admit('h1', 'down', 'e4',
                                           t + 3 * second))
        self.assertEqual('down', self.tracker.state('h1'))

    def test_naive_times_are_utc(self):
        utc = datetime.timezone.utc
        t = datetime.datetime(2026, 11, 25, 10, 0, 0)
        self.assertTrue(self.tracker.admit('h1', 'up', 'e1',
                                           t.replace(tzinfo=utc)))
        self.assertFalse(self.tracker.admit(
            'h1', 'down', 'e2', t - datetime.timedelta(seconds=1)))
        self.assertTrue(self.tracker.admit(
            'h1', 'down', 'e3', t + datetime.timedelta(seconds=1)))

    def test_reports_without_a_time_are_not_stale(self):
        t = datetime.datetime(2026, 11, 25, 10, 0, 0)
        self.assertTrue(self.tracker.admit('h1', 'up', 'e1', t))
        self.assertTrue(self.tracker.admit('h1', 'down', 'e2'))

    def test_flapping_recovery_held_then_released(self):
        # down, up, down, up, down: the fourth change is a recovery of a
        # flapping host.
        for state in ('down', 'up', 'down'):
            self.assertTrue(self.tracker.admit('h1', state, state))
        self.assertTrue(self.tracker.admit('h1', 'up', 'up-2'))
        self.assertTrue(self.tracker.admit('h1', 'down', 'down-3'))
        self.assertFalse(self.tracker.admit('h1', 'up', 'up-3'))
        self.assertEqual('down', self.tracker.state('h1'))
        self.assertTrue(self.done.wait(2))
        self.assertEqual(['up-3'], self.released)
        self.assertEqual('up', self.tracker.state('h1'))

    def test_failure_while_held_cancels_the_recovery(self):
        for state in ('down', 'up', 'down', 'up', 'down'):
            self.tracker.admit('h1', state, state)
        self.assertFalse(self.tracker.admit('h1', 'up', 'held'))
        # Down again: tenants already think it is down; nothing goes out.
        self.assertFalse(self.tracker.admit('h1', 'down', 'again'))
        self.assertFalse(self.done.wait(0.6))
        self.assertEqual([], self.released)
        self.assertEqual('down', self.tracker.state('h1'))

    def test_discard_forgets_the_host(self):
        self.assertTrue(self.tracker.admit('h1', 'down', 'e1'))
        self.tracker.discard('h1')
        self.assertIsNone(self.tracker.state('h1'))
        self.assertTrue(self.tracker.admit('h1', 'down', 'e2'))

    def test_zero_window_lets_repeats_through(self):
        self.set_opts(group='inspector', host_report_window=0.0)
        tracker = correlation.HostStateTracker(self.conf, self.release,
                                               clock=self.clock)
        self.assertTrue(tracker.admit('h1', 'down', 'e1'))
        self.assertTrue(tracker.admit('h1', 'down', 'e2'))
