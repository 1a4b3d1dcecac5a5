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

"""Tests for doctor_plugin.coordination.claims, on a SQLite database."""

import os
import threading

from doctor_plugin.coordination import claims as claims_mod
from doctor_plugin.delivery import store as store_mod
from doctor_plugin.tests import base

WON, REPEAT, TAKEN = claims_mod.WON, claims_mod.REPEAT, claims_mod.TAKEN


class TestHostClaims(base.TestCase):

    def setUp(self):
        super().setUp()
        url = f"sqlite:///{os.path.join(self.state_path, 'shared.sqlite')}"
        self.store = store_mod.DeliveryStore(url)
        self.addCleanup(self.store.close)
        self.now = [1000.0]
        self.a = self.claims('ctl-a')
        self.b = self.claims('ctl-b')

    def claims(self, owner):
        return claims_mod.HostClaims(self.store, owner, window=30.0,
                                     clock=lambda: self.now[0])

    def test_the_first_report_wins(self):
        self.assertEqual((WON, None), self.a.claim('h1', 'down', 'e1'))
        self.assertEqual({'h1': ('down', 'e1', 'ctl-a', 1000.0)},
                         self.a.states())

    def test_a_retried_report_is_a_repeat(self):
        self.a.claim('h1', 'down', 'e1')
        self.assertEqual((REPEAT, ('down', 'e1', 'ctl-a')),
                         self.b.claim('h1', 'down', 'e1'))

    def test_another_monitor_within_the_window_is_taken(self):
        self.a.claim('h1', 'down', 'e1')
        self.now[0] += 29
        self.assertEqual((TAKEN, ('down', 'e1', 'ctl-a')),
                         self.b.claim('h1', 'down', 'e2'))
        self.assertEqual('ctl-a', self.a.states()['h1'][2])

    def test_the_same_state_after_the_window_is_a_new_fault(self):
        self.a.claim('h1', 'down', 'e1')
        self.now[0] += 31
        self.assertEqual((WON, ('down', 'e1', 'ctl-a')),
                         self.b.claim('h1', 'down', 'e2'))
        self.assertEqual(('down', 'e2', 'ctl-b'),
                         self.a.states()['h1'][:3])

    def test_a_change_of_state_wins(self):
        self.a.claim('h1', 'down', 'e1')
        self.assertEqual((WON, ('down', 'e1', 'ctl-a')),
                         self.b.claim('h1', 'up', 'e2'))
        self.assertEqual((WON, ('up', 'e2', 'ctl-b')),
                         self.a.claim('h1', 'down', 'e3'))

    def test_hosts_are_apart(self):
        self.assertEqual(WON, self.a.claim('h1', 'down', 'e1')[0])
        self.assertEqual(WON, self.b.claim('h2', 'down', 'e2')[0])

    def test_release_lets_the_retry_win_again(self):
        outcome, previous = self.a.claim('h1', 'down', 'e1')
        self.a.release('h1', 'e1', previous)
        self.assertEqual({}, self.a.states())
        self.assertEqual(WON, self.b.claim('h1', 'down', 'e1')[0])

    def test_release_restores_the_previous_state(self):
        self.a.claim('h1', 'down', 'e1')
        outcome, previous = self.b.claim('h1', 'up', 'e2')
        self.b.release('h1', 'e2', previous)
        self.assertEqual(('down', 'e1', 'ctl-a'), self.a.states()['h1'][:3])

    def test_release_leaves_a_newer_claim_alone(self):
        _, previous = self.a.claim('h1', 'down', 'e1')
        self.b.claim('h1', 'up', 'e2')
        self.a.release('h1', 'e1', previous)
        self.assertEqual(('up', 'e2'), self.a.states()['h1'][:2])

    def test_a_repeat_of_a_live_members_claim_is_dropped(self):
        self.a.claim('h1', 'down', 'e1')
        outcome, _ = self.b.claim('h1', 'down', 'e1',
                                  alive={'ctl-a', 'ctl-b'}.__contains__)
        self.assertEqual(REPEAT, outcome)

    def test_a_repeat_of_a_departed_members_claim_passes_over(self):
        # ctl-a claimed, then died before it answered the monitor; the
        # monitor's retry reaches ctl-b.
        self.a.claim('h1', 'down', 'e1')
        self.assertEqual((WON, ('down', 'e1', 'ctl-a')),
                         self.b.claim('h1', 'down', 'e1',
                                      alive={'ctl-b'}.__contains__))
        self.assertEqual(('down', 'e1', 'ctl-b'),
                         self.a.states()['h1'][:3])
        # Released (its publishing failed), the claim is ctl-a's again,
        # so the next retry passes over again.
        self.b.release('h1', 'e1', ('down', 'e1', 'ctl-a'))
        self.assertEqual('ctl-a', self.a.states()['h1'][2])

    def test_fix_ups_are_recorded_and_taken_over(self):
        self.a.claim('h1', 'down', 'e1')
        self.a.claim('h2', 'down', 'e2')
        self.a.claim('h3', 'down', 'e3')
        self.a.mark_fixed('h1', 'e1')
        self.assertEqual({'ctl-a'}, self.b.unfixed_owners())
        # b owns h2 now, not h3 (another survivor's).
        self.assertEqual([('h2', 'down', 'e2')],
                         self.b.adopt_unfixed('ctl-a', {'h2'}.__contains__))
        self.assertEqual([], self.b.adopt_unfixed('ctl-a',
                                                  {'h2'}.__contains__))
        self.assertEqual('ctl-b', self.a.states()['h2'][2])
        self.b.mark_fixed('h2', 'e2')
        self.assertEqual({'ctl-a'}, self.b.unfixed_owners())   # h3
        self.a.mark_fixed('h3', 'e3')
        self.assertEqual(set(), self.b.unfixed_owners())

    def test_old_unfixed_changes_are_left(self):
        self.a.claim('h1', 'down', 'e1')
        self.now[0] += 3601
        self.assertEqual(set(), self.b.unfixed_owners())
        self.assertEqual([], self.b.adopt_unfixed('ctl-a', lambda h: True))

    def test_without_a_controller_every_claim_is_fixed(self):
        alone = claims_mod.HostClaims(self.store, 'ctl-c', 30.0,
                                      fixups=False)
        alone.claim('h1', 'down', 'e1')
        self.assertEqual(set(), self.a.unfixed_owners())

    def test_of_racing_members_exactly_one_wins(self):
        results = []
        start = threading.Barrier(8)

        def claim(i):
            mine = self.claims(f'ctl-{i}')
            start.wait()
            results.append(mine.claim('h1', 'down', f'e{i}')[0])

        threads = [threading.Thread(target=claim, args=(i,))
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual([WON], [r for r in results if r == WON])
        self.assertEqual(7, results.count(TAKEN))
