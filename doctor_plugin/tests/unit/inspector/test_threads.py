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

"""Each inspector owns its threads and shares no state with another.

Two inspectors run whole in one process, built from their configuration
as ``doctor-plugin-inspector`` builds one, with an ``alarms://`` sink
whose alarms post to a real webhook receiver.
"""

import os
import uuid

import fixtures
import yaml

from doctor_plugin import event as event_model
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin.testing import consumer
from doctor_plugin.tests.unit.inspector import test_service
from doctor_plugin.topology import hosts as topology_mod

TOPOLOGY = topology_mod.HostTopology([
    topology_mod.Instance('vm-1', 'tenant-a', 'compute-1'),
    topology_mod.Instance('vm-2', 'tenant-b', 'compute-1'),
    topology_mod.Instance('vm-3', 'tenant-a', 'compute-2'),
    topology_mod.Instance('vm-4', 'tenant-b', 'compute-2')])


class TestInspectorThreads(test_service.ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.set_opts(group='alarms', reload_interval=0.0)
        self.set_opts(group='notifier', webhook_max_retries=0)
        self.receiver = consumer.ConsumerServer().start()
        self.addCleanup(self.receiver.stop)
        directory = self.useFixture(fixtures.TempDir()).path
        alarms = os.path.join(directory, 'alarms.yaml')
        with open(alarms, 'w') as f:
            yaml.safe_dump({'alarms': [
                {'name': f'host-down-{t}', 'project_id': t,
                 'repeat_actions': True,
                 'event_rule': {'event_type': 'compute.host.down'},
                 'alarm_actions': [f'{self.receiver.url}/{t}']}
                for t in ('tenant-a', 'tenant-b')]}, f)
        pipeline = os.path.join(directory, 'pipeline.yaml')
        with open(pipeline, 'w') as f:
            # Two notifiers: a batch goes through the pipeline's pool.
            yaml.safe_dump({
                'sources': [{'name': 'hosts', 'events': ['compute.host.*'],
                             'sinks': ['local']}],
                'sinks': [{'name': 'local', 'notifiers': [
                    f'alarms://{alarms}', 'log://?level=debug']}]}, f)
        self.set_opts(pipeline_cfg_file=pipeline)

    def start_service(self):
        service = inspector_service.InspectorService(self.conf,
                                                     topology=TOPOLOGY)
        self.addCleanup(service.stop)
        return service.start()

    def host_down(self, service, host='compute-1'):
        fault_id = str(uuid.uuid4())
        service.engine.process([event_model.Event.create(
            'compute.host.down', {'host': host,
                                  'monitor_event_id': fault_id})])
        return fault_id

    def evaluator(self, service):
        (notifier,) = [n for n in service.pipeline.notifiers.values()
                       if n.url.startswith('alarms://')]
        return notifier.evaluator

    def test_two_inspectors_share_no_timeline_or_activity(self):
        one, two = self.start_service(), self.start_service()
        fault_id = self.host_down(one)
        self.assertEqual(2, len(self.receiver.wait_for(2, timeout=10)))
        # The engine (T06), the evaluator (T07) and its actions (T08)
        # mark the first service's timeline, and only it.
        marks = one.context.timeline.marks(fault_id)
        for checkpoint in ('T06', 'T07', 'T08'):
            self.assertIn(checkpoint, marks)
        self.assertEqual({}, two.context.timeline.marks(fault_id))
        # Within a service the evaluator counts its actions where the
        # engine (and so the fix-up) looks; across services nothing is
        # shared: work in progress in one does not hold the other back.
        self.assertIs(one.engine.activity, self.evaluator(one).activity)
        with self.evaluator(one).activity:
            self.assertFalse(one.engine.activity.wait_idle(0))
            self.assertTrue(two.engine.activity.wait_idle(0))
            self.assertTrue(self.evaluator(two).activity.wait_idle(0))

    def test_stop_ends_the_threads_of_its_pools_only(self):
        one, two = self.start_service(), self.start_service()
        self.host_down(one)
        self.host_down(two)
        self.assertEqual(4, len(self.receiver.wait_for(4, timeout=10)))
        pools = {'doctor-pipeline', 'doctor-alarm-action'}
        self.assertEqual(pools, set(one.context.executors))
        threads = one.context.threads()
        self.assertEqual(pools, {t.name.rsplit('_', 1)[0] for t in threads})
        theirs = two.context.threads()
        self.assertTrue(theirs)

        one.stop()

        self.assertEqual([], [t.name for t in threads if t.is_alive()])
        self.assertEqual([], one.context.threads())
        # The other inspector keeps its threads and still works.
        self.assertTrue(all(t.is_alive() for t in theirs))
        fault_id = self.host_down(two, 'compute-2')
        self.assertEqual(6, len(self.receiver.wait_for(6, timeout=10)))
        self.assertIn('T08', two.context.timeline.marks(fault_id))
