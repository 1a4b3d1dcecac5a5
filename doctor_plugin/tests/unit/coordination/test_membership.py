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

"""Tests for doctor_plugin.coordination.membership."""

import threading

from doctor_plugin.coordination import membership as membership_mod
from doctor_plugin import exceptions
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.coordination import base as coord_base

HOSTS = [f'compute-{i}' for i in range(60)]


class TestMembership(coord_base.CoordinationTestCase):

    def test_members_see_each_other_and_agree_on_owners(self):
        a = self.join('ctl-a', 'http://ctl-a:12345')
        b = self.join('ctl-b', 'http://ctl-b:12345')
        c = self.join('ctl-c')
        for m in (a, b, c):
            self.wait_members(m, 3)
        self.assertEqual('http://ctl-a:12345', b.view.members['ctl-a'].url)
        owners = {h: a.owner(h).id for h in HOSTS}
        for m in (b, c):
            self.assertEqual(owners, {h: m.owner(h).id for h in HOSTS})
        # Each host has one owner, and the ring spreads them.
        self.assertEqual({'ctl-a', 'ctl-b', 'ctl-c'}, set(owners.values()))
        for h in HOSTS:
            self.assertEqual([owners[h]], [m.member_id for m in (a, b, c)
                                           if m.owns(h)])

    def test_a_member_that_leaves_hands_its_hosts_over(self):
        a = self.join('ctl-a')
        b = self.join('ctl-b')
        self.wait_members(a, 2)
        kept = {h for h in HOSTS if a.owns(h)}
        b.stop()
        self.wait_members(a, 1)
        self.assertTrue(all(a.owns(h) for h in HOSTS))
        # Hosts that were a's stay a's: the ring moves only b's.
        self.assertLess(kept, set(HOSTS))

    def test_changes_are_reported_with_who_left_and_joined(self):
        changes = []
        seen = threading.Event()

        def on_change(view, left, joined):
            changes.append((sorted(view.members), set(left), set(joined)))
            seen.set()

        a = self.join('ctl-a', on_change=on_change)
        b = self.join('ctl-b')
        self.wait_members(a, 2)
        b.stop()
        self.wait_members(a, 1)
        self.assertEqual([(['ctl-a'], set(), {'ctl-a'}),
                          (['ctl-a', 'ctl-b'], set(), {'ctl-b'}),
                          (['ctl-a'], {'ctl-b'}, set())], changes)

    def test_wait_for_change(self):
        a = self.join('ctl-a')
        version = a.view.version
        self.assertFalse(a.wait_for_change(version, 0.1))
        self.join('ctl-b')
        self.assertTrue(a.wait_for_change(version, 5))
        self.assertGreater(a.view.version, version)

    def test_groups_are_apart(self):
        a = self.join('ctl-a', group='inspectors')
        self.join('ctl-b', group='listeners')
        self.wait_members(a, 1)
        self.assertFalse(a.wait_for_change(a.view.version, 0.3))

    def test_without_a_backend_there_is_no_lease_and_no_owner(self):
        self.set_opts(group='coordination',
                      backend_url=f'redis://127.0.0.1:{base.closed_port()}',
                      member_timeout=0.5, lease_margin=0.1)
        # start() waits member_timeout for the backend, then goes on.
        m = self.join('ctl-a')
        self.assertFalse(m.has_lease())
        self.assertIsNone(m.owner('compute-1'))
        self.assertFalse(m.owns('compute-1'))
        self.assertEqual({}, m.view.members)

    def test_the_lease_runs_from_the_last_good_turn(self):
        now = [1000.0]
        a = self.join('ctl-a', clock=lambda: now[0])
        self.assertTrue(a.has_lease())
        # A clock that jumps past the lease (the turns stalled): the
        # member stops acting until its next turn renews it.
        now[0] += self.conf.coordination.member_timeout
        self.assertFalse(a.has_lease())
        self.assertIsNone(a.owner('compute-1'))
        self.assertTrue(base.wait_until(a.has_lease, 5))


class TestConfiguration(coord_base.CoordinationTestCase):

    def make(self, **overrides):
        membership = membership_mod.Membership(
            self.member_conf(**overrides), 'g',
            membership_mod.Member('ctl-a'))
        self.addCleanup(membership.stop)
        return membership.start()

    def test_backend_url_is_needed(self):
        err = self.assertRaises(exceptions.ConfigurationError, self.make,
                                backend_url='')
        self.assertIn('[coordination] backend_url', str(err))
        self.assertIn('Standalone', str(err))

    def test_the_margin_must_leave_a_lease(self):
        err = self.assertRaises(exceptions.ConfigurationError, self.make,
                                member_timeout=1.0, lease_margin=1.0)
        self.assertIn('lease_margin', str(err))
        self.assertIn('less than member_timeout', str(err))

    def test_heartbeats_must_fit_twice_in_the_lease(self):
        err = self.assertRaises(exceptions.ConfigurationError, self.make,
                                member_timeout=2.0, lease_margin=0.5,
                                heartbeat_interval=1.0)
        self.assertIn('heartbeat_interval', str(err))
        self.assertIn('1.5 s', str(err))

    def test_an_unknown_backend_says_what_to_write(self):
        err = self.assertRaises(exceptions.ConfigurationError, self.make,
                                backend_url='nosuch://127.0.0.1:1')
        self.assertIn('redis://host:6379', str(err))


class TestStandalone(base.TestCase):

    def test_owns_every_host_always(self):
        alone = membership_mod.Standalone('ctl-a').start()
        self.assertTrue(alone.has_lease())
        self.assertTrue(all(alone.owns(h) for h in HOSTS))
        self.assertEqual('ctl-a', alone.owner('compute-1').id)
        self.assertFalse(alone.wait_for_change(0, 0.01))
        self.assertEqual(['ctl-a'], list(alone.view.members))
