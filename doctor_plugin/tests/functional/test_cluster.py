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

"""Active/active inspectors: real processes on Redis, RabbitMQ, PostgreSQL.

Each test runs ``doctor-plugin-inspector`` processes in one tooz group on
the real Redis (each member through a TCP relay of its own, which a test
cuts to partition it), with a fresh database on the real PostgreSQL, and
checks what tenants (the webhook consumer) and Nova (the stand-in) got:
one alarm id per fault whichever member a report reached, one force-down
per host, and no member acting on a host it does not own.
"""

import contextlib
import io
import json
import time
import uuid

import sqlalchemy as sa

from doctor_plugin.cmd import cli
from doctor_plugin.delivery import store as store_mod
from doctor_plugin.testing import cluster as cluster_mod
from doctor_plugin.testing import services
from doctor_plugin.tests import base

# Short enough that a test waits seconds, long enough for a loaded CI
# machine (2 cores, five processes) to keep its heartbeats.
COORDINATION = {'member_timeout': 2.0, 'heartbeat_interval': 0.25,
                'lease_margin': 0.5}
# How long a member cut off from Redis may still act: at most this after
# its last heartbeat.
LEASE = COORDINATION['member_timeout'] - COORDINATION['lease_margin']


class ClusterTestCase(base.TestCase):

    members = 3
    hosts = 9
    coordination: dict = COORDINATION

    def setUp(self):
        super().setUp()
        self.require(services.problems())
        self.cluster = cluster_mod.InspectorCluster(
            members=self.members, hosts=self.hosts, tenants=3,
            coordination=self.coordination)
        self.addCleanup(self.cluster.stop)
        self.addOnException(self._attach_logs)
        self.cluster.start()

    def _attach_logs(self, exc_info):
        for member in self.cluster.members:
            self.addDetail(f'log-{member.id}', _text(member.log()))

    def report_ok(self, host, member, event_id=None, status='down'):
        reply = self.cluster.report(host, member, event_id, status)
        self.assertEqual(200, reply.status_code, reply.text)
        return reply

    def host_states(self):
        """host -> (state, event id, owner) from the shared database."""
        engine = sa.create_engine(self.cluster.database.url)
        try:
            with engine.connect() as conn:
                return {row.host: (row.state, row.event_id, row.owner)
                        for row in conn.execute(
                            sa.select(store_mod.HOST_STATES))}
        finally:
            engine.dispose()

    def status(self):
        """``doctor-plugin status --json`` with a member's configuration."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = cli.main(['status', '--json', '--config-file',
                           self.cluster.members[0].conf_file])
        self.assertEqual(0, rc)
        return json.loads(out.getvalue())

    def assert_told_once(self, hosts):
        self.assertTrue(self.cluster.alarms.wait_hosts(hosts, 20),
                        f'no alarm for {set(hosts) - self.alarmed()}')
        self.assertEqual([], self.cluster.alarms.alarmed_twice())
        self.assertTrue(base.wait_until(
            lambda: set(hosts) <= set(self.cluster.force_downs()), 10),
            self.cluster.force_downs())
        self.assertEqual([], self.cluster.fixed_up_twice())

    def alarmed(self):
        return set(self.cluster.alarms.ids_of_host)


class TestPartitioning(ClusterTestCase):

    def test_any_member_takes_a_report_and_the_owner_acts_once(self):
        ids = self.cluster.wait_group(self.members)
        hosts = self.cluster.hosts
        owners = {h: self.cluster.owner_of(h, ids) for h in hosts}
        self.assertGreater(len({o.id for o in owners.values()}), 1,
                           'the ring gave every host to one member')
        for host in hosts:
            others = [m for m in self.cluster.members
                      if m is not owners[host]]
            # Two monitors saw the fault and reached two other members.
            for member in others:
                self.report_ok(host, member, f'{host}-{member.index}')
        self.assert_told_once(hosts)
        self.assertEqual({h: 1 for h in hosts},
                         dict(self.cluster.force_downs()))
        states = self.host_states()
        for host in hosts:
            state, _, owner = states[host]
            self.assertEqual('down', state)
            self.assertEqual(owners[host].id, owner,
                             f'{host} was claimed by a member that does '
                             f'not own it')
        # The operator's view says the same.
        status = self.status()
        self.assertEqual(sorted(ids), [
            m['id'] for m in status['members']['inspector']])
        for m in status['members']['inspector']:
            self.assertEqual((True, self.members),
                             (m['health']['lease'], m['health']['members']))
        for host in hosts:
            self.assertEqual((owners[host].id, 'down', owners[host].id),
                             (status['hosts'][host]['owner'],
                              status['hosts'][host]['state'],
                              status['hosts'][host]['claimed_by']))

    def test_a_retried_report_is_deduplicated_across_members(self):
        host = self.cluster.hosts[0]
        for member in self.cluster.members:
            self.report_ok(host, member, 'the-same-report')
        self.assert_told_once([host])
        self.assertEqual(1, self.cluster.alarms.deliveries)


class TestTakeover(ClusterTestCase):

    def test_a_killed_members_hosts_and_deliveries_move(self):
        ids = self.cluster.wait_group(self.members)
        victim = self.cluster.members[0]
        victims_hosts = [h for h in self.cluster.hosts
                         if self.cluster.owner_of(h, ids) is victim]
        self.assertTrue(victims_hosts, 'the ring gave member 0 no host')
        first, rest = victims_hosts[0], victims_hosts[1:]
        # Tenants are unreachable: the alarm waits in the victim's outbox.
        self.cluster.stop_consumer()
        self.report_ok(first, victim)
        self.assertTrue(base.wait_until(
            lambda: first in self.cluster.force_downs(), 10))
        self.assertEqual(1, self._pending(victim.id))
        victim.kill()
        survivors = self.cluster.wait_group(self.members - 1, 10,
                                            without=[victim.id])
        self.cluster.start_consumer()
        # Its pending delivery is resumed by a survivor, once.
        self.assertTrue(self.cluster.alarms.wait_hosts([first], 20),
                        'the dead member\'s pending alarm never arrived')
        self.assertTrue(base.wait_until(
            lambda: self._pending(victim.id) == 0, 10))
        # Its other hosts now belong to the survivors.
        for host in rest:
            owner = self.cluster.owner_of(host, survivors)
            other = next(m for m in self.cluster.members
                         if m is not owner and m.running)
            self.report_ok(host, other)
        self.assert_told_once(victims_hosts)
        # A repeat of the first fault, to a survivor, changes nothing.
        self.report_ok(first, self.cluster.members[1])
        self.assertEqual(1, self.cluster.force_downs()[first])

    def _pending(self, owner):
        store = store_mod.DeliveryStore(self.cluster.database.url)
        try:
            return store.pending_by_owner().get(owner, 0)
        finally:
            store.close()

    def test_a_fix_up_the_dead_member_never_made_is_made(self):
        ids = self.cluster.wait_group(self.members)
        victim = self.cluster.members[0]
        host = next(h for h in self.cluster.hosts
                    if self.cluster.owner_of(h, ids) is victim)
        nova = self.cluster.nova
        # Nova answers 503: the victim tells the tenants, then keeps
        # retrying the fix-up until it dies.
        nova.go_down('503')
        self.report_ok(host, victim)
        self.assertTrue(base.wait_until(
            lambda: any(c.status == 503 for c in nova.calls), 10))
        victim.kill()
        nova.come_back()
        self.cluster.wait_group(self.members - 1, 10, without=[victim.id])
        self.assert_told_once([host])
        self.assertTrue(base.wait_until(
            lambda: self.cluster.force_downs()[host] == 1, 10),
            'no survivor made the fix-up')
        state, _, owner = self.host_states()[host]
        self.assertNotEqual(victim.id, owner)
        self.assertIn(owner, {m.id for m in self.cluster.members[1:]})

    def test_a_member_that_comes_back_owns_its_hosts_again(self):
        ids = self.cluster.wait_group(self.members)
        member = self.cluster.members[2]
        its_hosts = [h for h in self.cluster.hosts
                     if self.cluster.owner_of(h, ids) is member]
        self.assertTrue(its_hosts)
        host = its_hosts[0]
        member.kill()
        survivors = self.cluster.wait_group(self.members - 1, 10,
                                            without=[member.id])
        # While it is away a survivor handles its host.
        self.report_ok(host, self.cluster.members[0])
        self.assert_told_once([host])
        stand_in = self.cluster.owner_of(host, survivors)
        self.assertEqual(stand_in.id, self.host_states()[host][2])
        member.start()
        self.cluster.wait_group(self.members, 20)
        # The fault it missed is not acted on again when it returns...
        self.report_ok(host, self.cluster.members[1], 'a-second-monitor')
        self.assertEqual(1, self.cluster.force_downs()[host])
        # ...and the next fault of its host is its own.
        self.report_ok(host, self.cluster.members[0], status='up')
        self.report_ok(host, self.cluster.members[0], 'the-next-fault')
        self.assertTrue(base.wait_until(
            lambda: self.cluster.force_downs()[host] == 2, 10))
        self.assertEqual(('down', member.id),
                         self.host_states()[host][::2])


class TestCoordinatorPartition(ClusterTestCase):

    def test_a_member_cut_off_from_redis_stops_acting(self):
        ids = self.cluster.wait_group(self.members)
        cut = self.cluster.members[1]
        its_hosts = [h for h in self.cluster.hosts
                     if self.cluster.owner_of(h, ids) is cut]
        self.assertTrue(its_hosts)
        cut.proxy.cut('blackhole')
        # The process lives on; once its lease is out it refuses to act.
        time.sleep(LEASE + 0.25)
        reply = self.cluster.report(its_hosts[0], cut)
        self.assertEqual(503, reply.status_code, reply.text)
        self.assertIn('coordination', reply.text)
        self.assertTrue(cut.running)
        survivors = self.cluster.wait_group(self.members - 1, 10,
                                            without=[cut.id])
        for host in its_hosts:
            owner = self.cluster.owner_of(host, survivors)
            self.report_ok(host, owner)
        self.assert_told_once(its_hosts)
        states = self.host_states()
        self.assertNotIn(cut.id, {states[h][2] for h in its_hosts})
        # Back on the network, it rejoins and acts on its own hosts.
        cut.proxy.restore()
        self.cluster.wait_group(self.members, 20)
        other = self.cluster.hosts[-1]
        self.report_ok(other, cut)
        self.assert_told_once(its_hosts + [other])

    def test_with_redis_gone_no_member_acts_until_it_is_back(self):
        self.cluster.wait_group(self.members)
        host = self.cluster.hosts[0]
        for member in self.cluster.members:
            member.proxy.cut('reset')
        time.sleep(LEASE + 0.25)
        for member in self.cluster.members:
            reply = self.cluster.report(host, member)
            self.assertEqual(503, reply.status_code, reply.text)
        self.assertEqual({}, dict(self.cluster.force_downs()))
        self.assertEqual(set(), self.alarmed())
        for member in self.cluster.members:
            member.proxy.restore()
        self.cluster.wait_group(self.members, 20)
        self.report_ok(host, self.cluster.members[2])
        self.assert_told_once([host])


class TestSingleProcess(ClusterTestCase):

    members = 1
    hosts = 3
    coordination = {'backend_url': ''}

    def test_one_process_without_coordination_works_alone(self):
        member = self.cluster.members[0]
        for host in self.cluster.hosts:
            reply = self.report_ok(host, member)
            self.assertGreater(reply.json()['published'], 0)
        self.assert_told_once(self.cluster.hosts)
        self.assertEqual(set(), self.cluster.group_members())
        # No claims either: the single process keeps no shared state.
        self.assertEqual({}, self.host_states())


def _text(value):
    from testtools import content
    return content.text_content(value)


class TestRegionsApart(base.TestCase):
    """Two regions on one Redis, with members of the same names."""

    def test_a_dead_member_is_not_kept_alive_by_its_namesake(self):
        from doctor_plugin.coordination import membership

        self.require(services.problem('Redis'))
        run = uuid.uuid4().hex[:8]
        region_a, region_b = f'region-a-{run}', f'region-b-{run}'
        self.set_opts(group='coordination', backend_url=services.REDIS_URL,
                      member_secret='x' * 32)
        self.conf.set_override('group', region_b, 'coordination')
        # Region B's ctl-1 heartbeats all the while.
        alive = membership.Membership(
            self.conf, f'{region_b}.inspector',
            membership.Member('ctl-1:doctor-plugin-inspector')).start()
        self.addCleanup(alive.stop)
        # Region A's ctl-1 joins, beats once and dies (no leave).
        dead = membership.make_coordinator(
            services.REDIS_URL, 'ctl-1:doctor-plugin-inspector', 1.0, 1.0,
            region_a)
        dead.start(start_heart=False)
        group = f'{region_a}.inspector'.encode()
        dead.create_group(group).get(timeout=2)
        dead.join_group(group).get(timeout=2)
        dead.heartbeat()
        observer = membership.make_coordinator(
            services.REDIS_URL, f'observer-{run}', 1.0, 1.0, region_a)
        observer.start(start_heart=False)
        self.addCleanup(observer.stop)
        self.assertEqual({'ctl-1:doctor-plugin-inspector'}, set(
            membership.read_group(observer, group.decode(), 2)))
        self.assertTrue(base.wait_until(
            lambda: not membership.read_group(observer, group.decode(), 2),
            5), 'region B kept region A\'s dead member alive')
