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

"""Two members in one process: real APIs on loopback, real tooz groups.

Each member is an inspector engine with its own API server, membership
(tooz's file driver) and forwarder; they share one SQLite database for
their claims and deliveries, as members share PostgreSQL in production.
"""

import json
import os
import threading
import time

import requests

from doctor_plugin.common import plugins
from doctor_plugin.coordination import claims as claims_mod
from doctor_plugin.coordination import cluster as cluster_mod
from doctor_plugin.coordination import forward
from doctor_plugin.coordination import membership as membership_mod
from doctor_plugin.delivery import store as store_mod
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import api
from doctor_plugin.inspector import engine
from doctor_plugin import pipeline
from doctor_plugin import signing
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.tests import base
from doctor_plugin.tests import notifications
from doctor_plugin.tests.unit.coordination import base as coord_base
from doctor_plugin.topology import hosts as topology

HOSTS = [f'compute-{i}' for i in range(12)]


def doctor_report(host, event_id, monitor_id=None, event_type=None,
                  status='down'):
    details = {'hostname': host, 'status': status, 'monitor': 'test',
               'monitor_event_id': event_id}
    if monitor_id:
        details['monitor_id'] = monitor_id
    return [{'id': event_id, 'time': '2026-12-04T01:00:00.000000',
             'type': event_type or 'compute.host.down',
             'details': details}]


class Node:
    """One member: engine, API server, membership, forwarder."""

    def __init__(self, test, member_id, store):
        self.id = member_id
        self.recorder = notifications.BatchRecorder()
        pipe = pipeline.Pipeline(
            test.conf, pipeline.PipelineDefinition.from_dict({
                'sources': [{'name': 'faults', 'events': ['*'],
                             'sinks': ['out']}],
                'sinks': [{'name': 'out', 'notifiers': ['log://']}]}))
        test.addCleanup(pipe.close)
        pipe.notifiers['log://'] = self.recorder
        self.me = membership_mod.Member(member_id)
        self.membership = membership_mod.Membership(
            test.member_conf(), 'g.inspector', self.me)
        self.forwarder = forward.Forwarder(test.conf, self.me)
        self.cluster = cluster_mod.Cluster(
            self.membership,
            claims_mod.HostClaims(store, member_id, 30.0),
            self.forwarder, engine.HOST_EVENT_TYPES, 0.5)
        test.addCleanup(self.cluster.close)
        self.engine = engine.Inspector(
            test.conf, pipe, topology.HostTopology([
                topology.Instance(f'vm-{h}', 'tenant-a', h)
                for h in HOSTS]), test.timeline, cluster=self.cluster)
        transformer = plugins.load_driver(plugins.TRANSFORMERS_NAMESPACE,
                                          'doctor', test.conf)
        self.app = api.InspectorAPI(test.conf, self.engine, transformer)
        self.server = api.APIServer(self.app, '127.0.0.1', 0).start()
        test.addCleanup(self.stop)
        self.url = self.server.url
        # Announce the URL it serves on, as the service does.
        self.membership.me = membership_mod.Member(member_id, self.url)
        self.membership.start()

    def hosts_told(self):
        """Hosts of the host-down events it published, not tenants' copies."""
        return [ev.trait('host') for batch in self.recorder.batches
                for ev in batch if ev.event_type == 'compute.host.down'
                and not ev.trait('project_id')]

    def stop(self):
        self.membership.stop()
        self.server.stop()


class ClusterTestCase(coord_base.CoordinationTestCase):

    #: Whether the members corroborate reports (k = 2 of 3).
    corroborate = False

    def setUp(self):
        super().setUp()
        self.set_opts(group='inspector', instance_events=False)
        if self.corroborate:
            self.set_opts(group='detection', required_reports=2,
                          monitors_per_host=3)
        self.secret = chain_mod.use_shared_secret(self.conf)
        url = f"sqlite:///{os.path.join(self.state_path, 'shared.sqlite')}"
        self.store = store_mod.DeliveryStore(url)
        self.addCleanup(self.store.close)
        self.a = Node(self, 'ctl-a', self.store)
        self.b = Node(self, 'ctl-b', self.store)
        for node in (self.a, self.b):
            self.wait_members(node.membership, 2)
        self.session = requests.Session()
        self.addCleanup(self.session.close)

    def report(self, node, host, event_id, **details):
        return self.session.put(f'{node.url}/events',
                                json=doctor_report(host, event_id,
                                                   **details),
                                headers={'X-Auth-Token': self.secret},
                                timeout=10)

    def owned_by(self, node):
        return [h for h in HOSTS if node.membership.owns(h)]


class TestRouting(ClusterTestCase):

    def test_a_report_to_a_non_owner_is_handled_by_the_owner(self):
        host = self.owned_by(self.b)[0]
        reply = self.report(self.a, host, 'e1')
        self.assertEqual(200, reply.status_code, reply.text)
        self.assertEqual([host], self.b.hosts_told())
        self.assertEqual([], self.a.hosts_told())
        self.assertEqual('ctl-b', self.b.cluster.claims.states()[host][2])
        self.assertEqual(1, self.a.cluster.stats['handed_over'])

    def test_each_member_handles_its_own(self):
        for i, host in enumerate(HOSTS):
            node = (self.a, self.b)[i % 2]
            self.assertEqual(
                200, self.report(node, host, f'e{i}').status_code)
        self.assertEqual(sorted(self.owned_by(self.a)),
                         sorted(self.a.hosts_told()))
        self.assertEqual(sorted(self.owned_by(self.b)),
                         sorted(self.b.hosts_told()))

    def test_a_second_monitor_is_dropped_by_the_claim(self):
        host = self.owned_by(self.a)[0]
        self.report(self.a, host, 'e1')
        self.report(self.b, host, 'e2')
        self.assertEqual([host], self.a.hosts_told())
        self.assertEqual([], self.b.hosts_told())

    def test_events_not_of_a_host_stay_where_they_arrive(self):
        ev = event_model.Event.create('compute.instance.update',
                                      {'instance_id': 'vm-x'})
        local, remote = self.a.cluster.split([ev])
        self.assertEqual([ev], local)
        self.assertEqual({}, remote)

    def test_when_the_owner_is_gone_the_group_change_decides(self):
        host = self.owned_by(self.b)[0]
        self.b.server.stop()
        # b no longer answers; once it leaves the group, a owns the host.
        threading.Timer(0.3, self.b.membership.stop).start()
        started = time.monotonic()
        reply = self.report(self.a, host, 'e1')
        self.assertEqual(200, reply.status_code, reply.text)
        self.assertEqual([host], self.a.hosts_told())
        self.assertLess(time.monotonic() - started, 3.0)
        self.assertGreaterEqual(self.a.cluster.stats['handed_over_retries'],
                                1)

    def test_healthz_shows_the_view(self):
        reply = self.session.get(f'{self.a.url}/healthz', timeout=5)
        self.assertEqual(200, reply.status_code)
        self.assertEqual({'status': 'ok',
                          'coordination': {
                              'lease': True, 'members': 2,
                              'version': self.a.membership.view.version}},
                         reply.json())


class TestCorroborationInACluster(ClusterTestCase):

    corroborate = True

    def test_reports_to_different_members_are_counted_by_the_owner(self):
        host = self.owned_by(self.b)[0]
        self.assertEqual(200, self.report(self.a, host, 'e1',
                                          monitor_id='mon-1').status_code)
        self.assertEqual([], self.b.hosts_told())
        self.assertEqual(200, self.report(self.b, host, 'e2',
                                          monitor_id='mon-2').status_code)
        self.assertEqual([host], self.b.hosts_told())
        self.assertEqual([], self.a.hosts_told())

    def test_every_member_learns_of_an_isolated_monitor(self):
        reply = self.report(self.a, 'mon-1', 'iso', monitor_id='mon-1',
                            event_type='doctor.monitor.isolated',
                            status='isolated')
        self.assertEqual(200, reply.status_code, reply.text)
        for node in (self.a, self.b):
            self.assertEqual({'mon-1'}, node.engine.detection.isolated())
        # Published once, by the member it was reported to.
        published = [[ev for ev in batch
                      if ev.event_type == 'doctor.monitor.isolated']
                     for node in (self.a, self.b)
                     for batch in node.recorder.batches]
        self.assertEqual(1, sum(len(b) for b in published))
        # Its reports no longer count on the owner.
        host = self.owned_by(self.b)[0]
        self.report(self.a, host, 'e1', monitor_id='mon-1')
        self.report(self.a, host, 'e2', monitor_id='mon-2')
        self.assertEqual([], self.b.hosts_told())


class TestTakeOverRoute(ClusterTestCase):

    def post(self, body, key=coord_base.SECRET.encode(), headers=None):
        data = json.dumps(body).encode()
        all_headers = {'Content-Type': 'application/json',
                       forward.MEMBER_HEADER: 'ctl-a', **(headers or {})}
        signing.sign(key, data, all_headers)
        return self.session.post(f'{self.b.url}{forward.PATH}', data=data,
                                 headers=all_headers, timeout=5)

    def events(self, host):
        return {'request_id': 'r1', 'events': [event_model.Event.create(
            'compute.host.down', {'host': host}).serialize()]}

    def test_a_signed_hand_over_is_handled(self):
        host = self.owned_by(self.b)[0]
        reply = self.post(self.events(host))
        self.assertEqual(200, reply.status_code, reply.text)
        self.assertEqual([host], self.b.hosts_told())

    def test_another_secret_is_refused(self):
        reply = self.post(self.events(self.owned_by(self.b)[0]),
                          key=b'not-the-member-secret-at-all')
        self.assertEqual(401, reply.status_code)
        self.assertIn('member_secret', reply.json()['error']['message'])
        self.assertEqual([], self.b.hosts_told())

    def test_unsigned_is_refused_without_a_token_check(self):
        reply = self.session.post(f'{self.b.url}{forward.PATH}',
                                  data=b'{}', timeout=5)
        self.assertEqual(401, reply.status_code)

    def test_malformed_but_signed_is_400(self):
        reply = self.post({'events': 'not a list'})
        self.assertEqual(400, reply.status_code)
        self.assertEqual('events', reply.json()['error']['field'])

    def test_only_post(self):
        reply = self.session.get(f'{self.b.url}{forward.PATH}', timeout=5)
        self.assertEqual(405, reply.status_code)
        self.assertEqual('POST', reply.headers['Allow'])


class TestForwarder(coord_base.CoordinationTestCase):

    def test_a_short_secret_is_refused(self):
        self.set_opts(group='coordination', member_secret='short')
        err = self.assertRaises(exceptions.ConfigurationError,
                                forward.member_key, self.conf)
        self.assertIn('openssl rand -hex 32', str(err))

    def test_an_owner_that_does_not_answer_is_unreachable(self):
        sender = forward.Forwarder(self.conf, membership_mod.Member('ctl-a'))
        self.addCleanup(sender.close)
        owner = membership_mod.Member(
            'ctl-b', f'http://127.0.0.1:{base.closed_port()}')
        ev = event_model.Event.create('compute.host.down', {'host': 'h1'})
        self.assertRaises(forward.OwnerUnreachable, sender.send, owner, [ev])

    def test_an_owner_without_a_url_is_unreachable(self):
        sender = forward.Forwarder(self.conf, membership_mod.Member('ctl-a'))
        err = self.assertRaises(forward.OwnerUnreachable, sender.send,
                                membership_mod.Member('ctl-b'), [])
        self.assertIn('advertise_url', str(err))


class TestTakeover(coord_base.CoordinationTestCase):

    def setUp(self):
        super().setUp()
        url = f"sqlite:///{os.path.join(self.state_path, 'shared.sqlite')}"
        self.store = store_mod.DeliveryStore(url)
        self.addCleanup(self.store.close)

    def add(self, owner, count):
        clock = store_mod.IdClock()
        self.store.add(owner, [store_mod.Delivery(
            id=clock(), key=f'k-{owner}', target='http://127.0.0.1:1/',
            event_id=f'e{i}', label='alarm', payload=b'{}',
            deadline=time.time() + 600) for i in range(count)])

    def test_a_survivor_adopts_the_rows_of_a_member_that_left(self):
        me = self.join('ctl-a:doctor-plugin-inspector')
        self.add('ctl-dead:doctor-plugin-inspector', 3)
        self.add('ctl-x:doctor-plugin-listener', 2)
        self.add('ctl-a:doctor-plugin-inspector', 1)
        resumed = []
        takeover = cluster_mod.Takeover(me, self.store,
                                        ':doctor-plugin-inspector',
                                        lambda: resumed.append(1))
        self.assertEqual(3, takeover.sweep())
        self.assertEqual([1], resumed)
        self.assertEqual({'ctl-a:doctor-plugin-inspector': 4,
                          'ctl-x:doctor-plugin-listener': 2},
                         self.store.pending_by_owner())
        self.assertIn('ctl-dead:doctor-plugin-inspector', takeover.adopted)
        # Nothing more to adopt.
        self.assertEqual(0, takeover.sweep())

    def test_the_rows_of_a_live_member_stay(self):
        me = self.join('ctl-a:doctor-plugin-inspector')
        other = self.join('ctl-b:doctor-plugin-inspector')
        self.wait_members(me, 2)
        self.add('ctl-b:doctor-plugin-inspector', 2)
        takeover = cluster_mod.Takeover(me, self.store,
                                        ':doctor-plugin-inspector',
                                        lambda: None)
        self.assertEqual(0, takeover.sweep())
        other.stop()
        self.wait_members(me, 1)
        self.assertEqual(2, takeover.sweep())

    def test_a_survivor_makes_the_fix_ups_a_dead_member_never_made(self):
        me = self.join('ctl-a:doctor-plugin-inspector')
        dead = claims_mod.HostClaims(
            self.store, 'ctl-dead:doctor-plugin-inspector', 30.0)
        dead.claim('compute-1', 'down', 'e1')
        dead.claim('compute-2', 'down', 'e2')
        dead.mark_fixed('compute-2', 'e2')
        mine = claims_mod.HostClaims(
            self.store, 'ctl-a:doctor-plugin-inspector', 30.0)
        made = []
        takeover = cluster_mod.Takeover(
            me, self.store, ':doctor-plugin-inspector', lambda: None,
            claims=mine, fix_up=lambda *change: made.append(change))
        takeover.sweep()
        self.assertEqual([('compute-1', 'down', 'e1')], made)
        takeover.sweep()
        self.assertEqual(1, len(made))
