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

"""Tests of the alarms:// notifier: alarm evaluation in the pipeline."""

import os
import uuid

import fixtures
import yaml

from doctor_plugin.alarms import notifier as alarms
from doctor_plugin.common import context
from doctor_plugin.common import plugins
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import engine
from doctor_plugin import pipeline
from doctor_plugin.testing import consumer
from doctor_plugin.tests import base
from doctor_plugin.topology import hosts as topology


class AlarmsNotifierTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.set_opts(group='notifier', webhook_max_retries=0)
        self.set_opts(group='alarms', reload_interval=0.0)
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.receiver = consumer.ConsumerServer().start()
        self.addCleanup(self.receiver.stop)

    def write_alarms(self, name='alarms.yaml', tenants=('tenant-a',)):
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            yaml.safe_dump({'alarms': [
                {'name': f'host-down-{t}', 'project_id': t,
                 'event_rule': {'event_type': 'compute.host.down'},
                 'alarm_actions': [f'{self.receiver.url}/{t}']}
                for t in tenants]}, f)
        return path


class TestAlarmsNotifier(AlarmsNotifierTestCase):

    def test_loads_by_scheme_with_the_configured_file(self):
        self.set_opts(group='alarms', definitions_file=self.write_alarms())
        notifier = plugins.load_notifier(self.conf, 'alarms://')
        self.addCleanup(notifier.close)
        self.assertIsInstance(notifier, alarms.AlarmEvaluatorNotifier)
        self.assertEqual(['host-down-tenant-a'],
                         [a.name for a in notifier.evaluator.alarms])

    def test_url_path_names_another_file(self):
        path = self.write_alarms('other.yaml', ('tenant-b',))
        notifier = plugins.load_notifier(self.conf, f'alarms://{path}')
        self.addCleanup(notifier.close)
        self.assertEqual(['host-down-tenant-b'],
                         [a.name for a in notifier.evaluator.alarms])

    def test_built_alone_it_gets_a_private_context(self):
        path = self.write_alarms()
        one = plugins.load_notifier(self.conf, f'alarms://{path}')
        self.addCleanup(one.close)
        two = plugins.load_notifier(self.conf, f'alarms://{path}')
        self.addCleanup(two.close)
        self.assertIsNot(one.context, two.context)
        self.assertIs(one.context, one.evaluator.context)
        with one.evaluator.activity:
            self.assertTrue(two.evaluator.activity.wait_idle(0))

    def test_the_pipeline_passes_its_context_down(self):
        path = self.write_alarms()
        ctx = context.ServiceContext('test')
        self.addCleanup(ctx.close)
        pipe = pipeline.Pipeline(self.conf, pipeline.PipelineDefinition
                                 .from_dict({
                                     'sources': [{'name': 's',
                                                  'events': ['*'],
                                                  'sinks': ['a']}],
                                     'sinks': [{'name': 'a', 'notifiers': [
                                         f'alarms://{path}', 'log://']}]}),
                                 context=ctx)
        self.addCleanup(pipe.close)
        self.assertIs(ctx, pipe.context)
        for notifier in pipe.notifiers.values():
            self.assertIs(ctx, notifier.context)
        (evaluator,) = [n.evaluator for n in pipe.notifiers.values()
                        if hasattr(n, 'evaluator')]
        self.assertIs(ctx.timeline, evaluator.timeline)
        self.assertIs(ctx.activity, evaluator.activity)
        self.assertIn('doctor-alarm-action', ctx.executors)
        self.assertIn('doctor-pipeline', ctx.executors)

    def test_host_or_parameters_are_refused(self):
        for url in ('alarms://somewhere/alarms.yaml', 'alarms://?x=1'):
            exc = self.assertRaises(exceptions.ConfigurationError,
                                    alarms.AlarmEvaluatorNotifier,
                                    self.conf, url)
            self.assertIn('alarms:///path/to/alarms.yaml', str(exc))

    def test_missing_file_is_a_startup_error(self):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                alarms.AlarmEvaluatorNotifier, self.conf,
                                f'alarms://{self.dir}/none.yaml')
        self.assertIn('[alarms] definitions_file', exc.problem)

    def test_an_alarm_may_not_evaluate_its_own_notification(self):
        path = os.path.join(self.dir, 'loop.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump({'alarms': [{
                'name': 'loop', 'event_rule': {},
                'alarm_actions': ['alarms://']}]}, f)
        exc = self.assertRaises(exceptions.ConfigurationError,
                                alarms.AlarmEvaluatorNotifier, self.conf,
                                f'alarms://{path}')
        self.assertIn('alarm_actions', exc.problem)

    def test_pipeline_reload_rereads_the_file(self):
        path = self.write_alarms()
        pipe = pipeline.Pipeline(self.conf, pipeline.PipelineDefinition
                                 .from_dict({
                                     'sources': [{'name': 's',
                                                  'events': ['*'],
                                                  'sinks': ['a']}],
                                     'sinks': [{'name': 'a', 'notifiers': [
                                         f'alarms://{path}']}]}))
        self.addCleanup(pipe.close)
        self.write_alarms(tenants=('tenant-a', 'tenant-b'))
        pipe.reload()
        (notifier,) = pipe.notifiers.values()
        self.assertEqual(2, len(notifier.evaluator.alarms))


class TestInspectorEvaluates(AlarmsNotifierTestCase):
    """The inspector's own fan-out fires the tenants' alarms: no bus."""

    def test_each_tenant_is_told_once_with_its_instances(self):
        path = self.write_alarms(tenants=('tenant-a', 'tenant-b'))
        pipe = pipeline.Pipeline(self.conf, pipeline.PipelineDefinition
                                 .from_dict({
                                     'sources': [{'name': 'hosts',
                                                  'events': ['compute.host.*'],
                                                  'sinks': ['a']}],
                                     'sinks': [{'name': 'a', 'notifiers': [
                                         f'alarms://{path}', 'log://']}]}))
        self.addCleanup(pipe.close)
        topo = topology.HostTopology([
            topology.Instance('vm-1', 'tenant-a', 'compute-1'),
            topology.Instance('vm-2', 'tenant-a', 'compute-1'),
            topology.Instance('vm-3', 'tenant-b', 'compute-1'),
            topology.Instance('vm-4', 'tenant-c', 'compute-2')])
        inspector = engine.Inspector(self.conf, pipe, topo)
        self.addCleanup(inspector.close)
        fault_id = str(uuid.uuid4())
        host_down = event_model.Event.create(
            'compute.host.down', {'host': 'compute-1',
                                  'monitor_event_id': fault_id})

        inspector.process([host_down])

        received = self.receiver.wait_for(2, timeout=5)
        self.assertEqual(
            {('/tenant-a', 'vm-1,vm-2'), ('/tenant-b', 'vm-3')},
            {(a.path, a.trait('instance_ids')) for a in received})
        # Marked on the pipeline's (the service's) timeline, which the
        # alarms:// evaluator shares, as a deployed inspector's does.
        marks = pipe.context.timeline.marks(fault_id)
        self.assertIn('T06', marks)
        self.assertIn('T07', marks)
        self.assertIn('T08', marks)
