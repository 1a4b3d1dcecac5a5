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

"""Tests for doctor_plugin.alarms.evaluator."""

import concurrent.futures
import datetime
import fnmatch
import json
import os
import random
import threading
import time
from unittest import mock

import fixtures
import yaml

from doctor_plugin.alarms import definitions
from doctor_plugin.alarms import evaluator
from doctor_plugin.alarms import index
from doctor_plugin.common import activity
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.testing import consumer
from doctor_plugin.tests import base

DETECTED = datetime.datetime(2017, 4, 22, 12, 0, 0)


closed_port = base.closed_port


def make_event(event_type='compute.host.down', project_id='tenant-a',
               **overrides):
    """An event with typed traits; ``overrides`` replace or add traits."""
    values = {'host': 'compute-1', 'instance_count': 2, 'load': 0.75,
              'time': DETECTED, 'monitor_event_id': 'fault-1',
              'project_id': project_id}
    values.update(overrides)
    return event_model.Event.create(
        event_type, {k: v for k, v in values.items() if v is not None})


def alarm(name='host-down', **raw):
    """An alarm of tenant-a, unless ``project_id`` says otherwise.

    ``project_id=None``: an alarm without a project.
    """
    raw.setdefault('event_rule', {'event_type': 'compute.host.down'})
    raw.setdefault('project_id', 'tenant-a')
    if raw['project_id'] is None:
        del raw['project_id']
    return dict(raw, name=name)


class EvaluatorTestCase(base.TestCase):

    def setUp(self):
        super().setUp()

    def make(self, *alarms):
        ev = evaluator.EventAlarmEvaluator(
            self.conf, definitions.parse({'alarms': list(alarms)}),
            timeline=self.timeline)
        self.addCleanup(ev.close)
        return ev

    def names(self, ev, event):
        return [a.name for a in ev.matching(event)]


class TestEventType(EvaluatorTestCase):

    def test_wildcard(self):
        ev = self.make(alarm('host', event_rule={
            'event_type': 'compute.host.*'}))
        self.assertEqual(['host'], self.names(ev, make_event()))
        self.assertEqual(['host'], self.names(
            ev, make_event('compute.host.up')))
        self.assertEqual([], self.names(
            ev, make_event('compute.instance.update')))

    def test_exact_type(self):
        ev = self.make(alarm())
        self.assertEqual(['host-down'], self.names(ev, make_event()))
        self.assertEqual([], self.names(ev, make_event('compute.host.up')))
        self.assertEqual([], self.names(
            ev, make_event('compute.host.down.extra')))

    def test_default_event_type_is_everything(self):
        ev = self.make(alarm('any', event_rule={}))
        self.assertEqual(['any'], self.names(
            ev, make_event('compute.instance.update')))

    def test_exact_and_wildcard_alarms_keep_definition_order(self):
        ev = self.make(alarm('a', event_rule={'event_type': 'compute.*'}),
                       alarm('b'),
                       alarm('c', event_rule={'event_type': '*.down'}),
                       alarm('d'))
        self.assertEqual(['a', 'b', 'c', 'd'], self.names(ev, make_event()))

    def test_candidates_only_of_the_event_type(self):
        ev = self.make(*[alarm(f'vm-{i}', event_rule={
            'event_type': 'compute.instance.update',
            'query': [{'field': 'traits.instance_id', 'value': f'vm-{i}'}]})
            for i in range(500)], alarm('host-down'))
        self.assertEqual(['host-down'],
                         [a.name for a in ev.candidates(make_event())])
        self.assertTrue(ev.watches('compute.instance.update'))
        self.assertFalse(ev.watches('compute.host.up'))
        self.assertEqual([], ev.candidates(make_event('compute.host.up')))
        self.assertEqual(['vm-7'], self.names(ev, make_event(
            'compute.instance.update', instance_id='vm-7')))


class TestProjectScoping(EvaluatorTestCase):
    """Aodh's scoping: an alarm sees the events of its project.

    An alarm without a project sees the events without one.
    """

    def setUp(self):
        super().setUp()
        self.evaluator = self.make(alarm('a'), alarm('b', project_id='b'),
                                   alarm('host', project_id=None))

    def test_tenant_alarm_sees_its_project(self):
        self.assertEqual(['a'], self.names(self.evaluator, make_event()))

    def test_tenant_alarm_ignores_other_projects(self):
        self.assertEqual(['b'], self.names(
            self.evaluator, make_event(project_id='b')))
        self.assertEqual([], self.names(
            self.evaluator, make_event(project_id='c')))

    def test_events_without_project_reach_alarms_without_one(self):
        self.assertEqual(['host'], self.names(
            self.evaluator, make_event(project_id=None)))

    def test_tenant_id_trait_is_a_project(self):
        event = make_event(project_id=None, tenant_id='tenant-a')
        self.assertEqual('tenant-a', evaluator.event_project(event))
        self.assertEqual(['a'], self.names(self.evaluator, event))


class TestQuery(EvaluatorTestCase):

    def assertQuery(self, expected, field, op, value, type_name,
                    event=None):
        ev = self.make(alarm(event_rule={
            'event_type': 'compute.host.down',
            'query': [{'field': field, 'op': op, 'value': value,
                       'type': type_name}]}))
        matched = bool(ev.matching(event or make_event()))
        self.assertEqual(expected, matched,
                         f'{field} {op} {value!r} ({type_name})')

    def test_string(self):
        for op, value, expected in [
                ('eq', 'compute-1', True), ('eq', 'compute-2', False),
                ('ne', 'compute-2', True), ('ne', 'compute-1', False),
                ('lt', 'compute-2', True), ('lt', 'compute-1', False),
                ('le', 'compute-1', True), ('le', 'compute-0', False),
                ('gt', 'compute-0', True), ('gt', 'compute-1', False),
                ('ge', 'compute-1', True), ('ge', 'compute-2', False)]:
            self.assertQuery(expected, 'traits.host', op, value, 'string')

    def test_integer(self):
        for op, value, expected in [
                ('eq', 2, True), ('eq', '2', True), ('eq', 3, False),
                ('ne', 3, True), ('ne', 2, False),
                ('lt', 3, True), ('lt', 2, False),
                ('le', 2, True), ('le', 1, False),
                ('gt', 1, True), ('gt', 2, False),
                ('ge', 2, True), ('ge', 3, False)]:
            self.assertQuery(expected, 'traits.instance_count', op, value,
                             'integer')

    def test_float(self):
        for op, value, expected in [
                ('eq', 0.75, True), ('eq', '0.5', False),
                ('ne', 0.5, True), ('ne', 0.75, False),
                ('lt', 1.0, True), ('lt', 0.75, False),
                ('le', 0.75, True), ('le', 0.5, False),
                ('gt', 0.5, True), ('gt', 0.75, False),
                ('ge', 0.75, True), ('ge', 1, False)]:
            self.assertQuery(expected, 'traits.load', op, value, 'float')

    def test_datetime(self):
        for op, value, expected in [
                ('eq', '2017-04-22T12:00:00', True),
                ('eq', '2017-04-22T14:00:00+02:00', True),
                ('eq', '2017-04-22T12:00:01Z', False),
                ('ne', '2017-04-22T12:00:01Z', True),
                ('lt', '2017-04-22T12:00:01Z', True),
                ('lt', '2017-04-22T12:00:00Z', False),
                ('le', '2017-04-22T12:00:00Z', True),
                ('gt', '2017-04-22T11:59:59Z', True),
                ('gt', '2017-04-22T12:00:00Z', False),
                ('ge', '2017-04-22T12:00:00Z', True),
                ('ge', '2017-04-23T00:00:00Z', False)]:
            self.assertQuery(expected, 'traits.time', op, value, 'datetime')

    def test_values_of_other_types_are_not_equal(self):
        # As in Aodh: the query value has the query's type, the trait its
        # own; a string "2" is not the integer 2, and ordering them fails.
        self.assertQuery(False, 'traits.instance_count', 'eq', '2', 'string')
        self.assertQuery(True, 'traits.instance_count', 'ne', '2', 'string')
        self.assertQuery(False, 'traits.instance_count', 'lt', '3', 'string')
        self.assertQuery(True, 'traits.instance_count', 'eq', '2.0', 'float')

    def test_missing_trait_holds_only_for_ne(self):
        for op in ('eq', 'lt', 'le', 'gt', 'ge'):
            self.assertQuery(False, 'traits.cause', op, 'x', 'string')
        self.assertQuery(True, 'traits.cause', 'ne', 'x', 'string')

    def test_event_field(self):
        self.assertQuery(True, 'event_type', 'eq', 'compute.host.down',
                         'string')

    def test_every_term_must_hold(self):
        ev = self.make(alarm(event_rule={
            'event_type': 'compute.host.down',
            'query': [{'field': 'traits.host', 'value': 'compute-1'},
                      {'field': 'traits.instance_count', 'op': 'gt',
                       'value': 5, 'type': 'integer'}]}))
        self.assertEqual([], ev.matching(make_event()))
        self.assertEqual(1, len(ev.matching(make_event(
            instance_count=6))))


class WebhookTestCase(EvaluatorTestCase):

    def setUp(self):
        super().setUp()
        self.set_opts(group='notifier', webhook_max_retries=0)
        self.receiver = consumer.ConsumerServer().start()
        self.addCleanup(self.receiver.stop)

    def run_actions(self, ev, events):
        futures = ev.evaluate(events)
        done, pending = concurrent.futures.wait(futures, timeout=2)
        self.assertEqual(set(), pending)
        return futures


class TestStateAndActions(WebhookTestCase):

    def test_insufficient_data_to_alarm(self):
        ev = self.make(alarm(project_id='tenant-a', alarm_actions=[
            f'{self.receiver.url}/tenant-a']))
        (definition,) = ev.alarms
        self.assertEqual({definition.alarm_id: 'insufficient data'},
                         ev.states)
        self.run_actions(ev, [make_event(project_id='tenant-b'),
                              make_event('compute.host.up')])
        self.assertEqual('insufficient data', ev.states[definition.alarm_id])
        self.assertEqual([], self.receiver.alarms)
        self.run_actions(ev, [make_event()])
        self.assertEqual('alarm', ev.states[definition.alarm_id])

    def test_webhook_body_is_aodhs(self):
        ev = self.make(alarm(
            project_id='tenant-a', severity='moderate',
            event_rule={'event_type': 'compute.host.down',
                        'query': [{'field': 'traits.host',
                                   'value': 'compute-1'}]},
            alarm_actions=[f'{self.receiver.url}/tenant-a']))
        (definition,) = ev.alarms
        event = make_event()

        self.run_actions(ev, [event])

        (received,) = self.receiver.wait_for(1, timeout=2)
        self.assertEqual('/tenant-a', received.path)
        body = received.body
        self.assertEqual(
            {'alarm_id', 'alarm_name', 'severity', 'previous', 'current',
             'reason', 'reason_data'}, set(body))
        self.assertEqual(definition.alarm_id, body['alarm_id'])
        self.assertEqual('host-down', body['alarm_name'])
        self.assertEqual('moderate', body['severity'])
        self.assertEqual('insufficient data', body['previous'])
        self.assertEqual('alarm', body['current'])
        query = json.dumps([{'field': 'traits.host', 'op': 'eq',
                             'type': 'string', 'value': 'compute-1'}],
                           sort_keys=True)
        self.assertEqual(
            f'Event <id={event.message_id},event_type=compute.host.down> '
            f'hits the query <query={query}>.', body['reason'])
        self.assertEqual({'type': 'event',
                          'event': json.loads(json.dumps(
                              event.serialize()))},
                         body['reason_data'])
        self.assertEqual(event.message_id,
                         received.headers['X-Doctor-Event-Id'])

    def test_repeat_actions_false_fires_once(self):
        ev = self.make(alarm(repeat_actions=False, alarm_actions=[
            f'{self.receiver.url}/a']))
        futures = self.run_actions(ev, [make_event(), make_event()])
        futures += self.run_actions(ev, [make_event()])
        self.assertEqual(1, len(futures))
        self.assertEqual(1, len(self.receiver.alarms))
        self.assertEqual('insufficient data',
                         self.receiver.alarms[0].body['previous'])

    def test_repeat_actions_true_fires_every_time(self):
        ev = self.make(alarm(repeat_actions=True, alarm_actions=[
            f'{self.receiver.url}/a']))
        events = [make_event() for _ in range(3)]
        self.run_actions(ev, events[:2])
        self.run_actions(ev, events[2:])
        received = self.receiver.wait_for(3, timeout=2)
        self.assertEqual(3, len(received))
        self.assertEqual(
            sorted(e.message_id for e in events),
            sorted(a.body['reason_data']['event']['message_id']
                   for a in received))
        self.assertEqual(['alarm', 'alarm', 'insufficient data'],
                         sorted(a.body['previous'] for a in received))

    def test_each_tenant_alarm_gets_its_own_event(self):
        ev = self.make(
            alarm('a', project_id='tenant-a',
                  alarm_actions=[f'{self.receiver.url}/a']),
            alarm('b', project_id='tenant-b',
                  alarm_actions=[f'{self.receiver.url}/b']))
        self.run_actions(ev, [make_event(project_id='tenant-a'),
                              make_event(project_id='tenant-b')])
        received = self.receiver.wait_for(2, timeout=2)
        self.assertEqual({('/a', 'tenant-a'), ('/b', 'tenant-b')},
                         {(a.path, a.trait('project_id'))
                          for a in received})

    def test_failed_action_does_not_stop_the_others(self):
        # Not durable: the failure is the future's (with the outbox it is
        # retried instead; tests/unit/delivery).
        self.set_opts(group='delivery', durable=False)
        dead = f'http://127.0.0.1:{closed_port()}/dead'
        ev = self.make(alarm(alarm_actions=[dead,
                                            f'{self.receiver.url}/a']))
        futures = self.run_actions(ev, [make_event()])
        self.assertIsInstance(futures[0].exception(),
                              exceptions.DeliveryError)
        self.assertIsNone(futures[1].exception())
        self.assertEqual(['/a'], [a.path for a in self.receiver.alarms])

    def test_profiler_marks(self):
        ev = self.make(alarm(alarm_actions=[f'{self.receiver.url}/a']))
        self.run_actions(ev, [make_event('compute.host.up')])
        self.assertEqual(['T07'], list(self.timeline.marks('fault-1')))
        self.run_actions(ev, [make_event()])
        marks = self.timeline.marks('fault-1')
        self.assertEqual(['T07', 'T08'], sorted(marks))
        self.assertLessEqual(marks['T07'], marks['T08'])


class TestConstruction(EvaluatorTestCase):

    def test_disabled_alarms_are_dropped(self):
        ev = self.make(alarm('off', enabled=False), alarm('on'))
        self.assertEqual(['on'], [a.name for a in ev.alarms])
        self.assertEqual(['on'], self.names(ev, make_event()))
        self.assertEqual(1, len(ev.states))

    def test_unknown_action_scheme_fails_at_startup(self):
        exc = self.assertRaises(
            exceptions.PluginLoadError, evaluator.EventAlarmEvaluator,
            self.conf, definitions.parse({'alarms': [
                alarm(alarm_actions=['snmp://trap-host'])]}))
        self.assertEqual('snmp', exc.name)
        self.assertIn('http', exc.available)

    def test_log_action(self):
        ev = self.make(alarm(alarm_actions=['log://?level=debug']))
        (future,) = ev.evaluate([make_event()])
        self.assertIsNone(future.result(timeout=2))


class TestIndex(EvaluatorTestCase):
    """The index only narrows the search: it never changes what matches."""

    def brute_force(self, ev, event):
        return [a.name for a in ev.alarms if a.rule.matches(event)
                and a.project_id == evaluator.event_project(event)]

    def test_index_agrees_with_trying_every_alarm(self):
        rng = random.Random(20170422)
        types = ['compute.host.down', 'compute.host.up',
                 'compute.instance.update', 'compute.*', '*.down', '*']
        hosts = [f'compute-{i}' for i in range(4)]
        projects = [None, 'tenant-a', 'tenant-b']
        alarms = []
        for i in range(300):
            query = []
            for _ in range(rng.randrange(3)):
                query.append(rng.choice([
                    {'field': 'traits.host', 'op': rng.choice(
                        ['eq', 'eq', 'ne', 'lt']),
                     'value': rng.choice(hosts)},
                    {'field': 'traits.instance_count', 'op': rng.choice(
                        ['eq', 'ge']), 'value': rng.randrange(4),
                     'type': rng.choice(['integer', 'float', 'string'])},
                    {'field': 'traits.state', 'value': 'error'}]))
            alarms.append(alarm(f'a{i}', project_id=rng.choice(projects),
                                event_rule={'event_type': rng.choice(types),
                                            'query': query}))
        ev = self.make(*alarms)
        checked = 0
        for _ in range(400):
            overrides = {'host': rng.choice(hosts + [None]),
                         'instance_count': rng.choice([0, 1, 2, 3, None]),
                         'state': rng.choice(['error', 'active', None])}
            event = make_event(rng.choice(types[:3]),
                               project_id=rng.choice(projects), **overrides)
            expected = self.brute_force(ev, event)
            self.assertEqual(expected, self.names(ev, event))
            checked += bool(expected)
        self.assertGreater(checked, 50)

    def test_equality_term_narrows_the_candidates(self):
        ev = self.make(*[alarm(f'vm-{i}', event_rule={
            'event_type': 'compute.instance.update',
            'query': [{'field': 'traits.state', 'op': 'ne',
                       'value': 'active'},
                      {'field': 'traits.instance_id', 'value': f'vm-{i}'}]})
            for i in range(1000)])
        event = make_event('compute.instance.update', instance_id='vm-42',
                           state='error')
        # Filed under the first equality term, instance_id.
        self.assertEqual(['vm-42'], [a.name for a in ev.candidates(event)])
        self.assertEqual(['vm-42'], self.names(ev, event))
        self.assertEqual([], ev.candidates(make_event(
            'compute.instance.update', instance_id='vm-42',
            project_id='tenant-b')))

    def test_ten_thousand_alarms_cost_what_ten_do(self):
        # The figure: 10,000 definitions must not slow one
        # evaluation by more than 2x. Compare the work done (candidates
        # checked), which, unlike seconds, a loaded machine cannot blur.
        def per_vm(n):
            return self.make(*[alarm(f'vm-{i}', event_rule={
                'event_type': 'compute.instance.update',
                'query': [{'field': 'traits.instance_id',
                           'value': f'vm-{i}'},
                          {'field': 'traits.state', 'value': 'error'}]})
                for i in range(n)])
        event = make_event('compute.instance.update', instance_id='vm-7',
                           state='error')
        small, large = per_vm(10), per_vm(10000)
        self.assertEqual(len(small.candidates(event)),
                         len(large.candidates(event)))
        self.assertEqual(['vm-7'], self.names(large, event))

    def test_patterns_are_matched_once_per_event_type(self):
        ev = self.make(alarm('a', event_rule={'event_type': 'compute.*'}))
        with mock.patch.object(index.fnmatch, 'fnmatchcase',
                               wraps=fnmatch.fnmatchcase) as spy:
            for _ in range(5):
                self.assertEqual(['a'], self.names(ev, make_event()))
        self.assertEqual(1, spy.call_count)


class TestOkRule(WebhookTestCase):

    def make_recoverable(self, **raw):
        return self.make(alarm(
            event_rule={'event_type': 'compute.host.down',
                        'query': [{'field': 'traits.host',
                                   'value': 'compute-1'}]},
            ok_rule={'event_type': 'compute.host.up',
                     'query': [{'field': 'traits.host',
                                'value': 'compute-1'}]},
            alarm_actions=[f'{self.receiver.url}/down'],
            ok_actions=[f'{self.receiver.url}/up'], **raw))

    def test_alarm_then_ok_then_alarm(self):
        ev = self.make_recoverable()
        (definition,) = ev.alarms
        self.run_actions(ev, [make_event()])
        self.run_actions(ev, [make_event('compute.host.up')])
        self.assertEqual('ok', ev.states[definition.alarm_id])
        self.run_actions(ev, [make_event()])
        received = self.receiver.wait_for(3, timeout=2)
        self.assertEqual(
            [('/down', 'insufficient data', 'alarm'),
             ('/up', 'alarm', 'ok'), ('/down', 'ok', 'alarm')],
            [(a.path, a.body['previous'], a.body['current'])
             for a in received])
        self.assertIn('"compute-1"', received[1].body['reason'])

    def test_ok_runs_once(self):
        ev = self.make_recoverable(repeat_actions=True)
        self.run_actions(ev, [make_event()])
        futures = self.run_actions(ev, [make_event('compute.host.up'),
                                        make_event('compute.host.up')])
        self.assertEqual(1, len(futures))

    def test_recovery_of_another_host_does_not_clear(self):
        ev = self.make_recoverable()
        self.run_actions(ev, [make_event()])
        self.assertEqual([], self.run_actions(
            ev, [make_event('compute.host.up', host='compute-2')]))
        self.assertEqual(['alarm'], list(ev.states.values()))

    def test_without_ok_rule_an_event_alarm_stays_in_alarm(self):
        ev = self.make(alarm(alarm_actions=[f'{self.receiver.url}/down'],
                             ok_actions=[f'{self.receiver.url}/up']))
        self.run_actions(ev, [make_event(), make_event('compute.host.up')])
        self.assertEqual(['alarm'], list(ev.states.values()))

    def test_actions_count_as_notification_work(self):
        work = activity.Activity()
        ev = evaluator.EventAlarmEvaluator(
            self.conf, definitions.parse({'alarms': [alarm(
                alarm_actions=[f'{self.receiver.url}/down'])]}),
            timeline=self.timeline, activity=work)
        self.addCleanup(ev.close)
        gate = threading.Event()
        original = ev._run

        def held(*args):
            gate.wait(5)
            return original(*args)

        with mock.patch.object(ev, '_run', held):
            futures = ev.evaluate([make_event()])
            self.assertFalse(work.wait_idle(0.05))
            gate.set()
            concurrent.futures.wait(futures, timeout=5)
        self.assertTrue(work.wait_idle(1))


class TestReload(WebhookTestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'alarms.yaml')

    def write(self, *alarms):
        with open(self.path, 'w') as f:
            yaml.safe_dump({'alarms': list(alarms)}, f)

    def from_file(self, interval=0.0):
        self.set_opts(group='alarms', definitions_file=self.path,
                      reload_interval=interval)
        ev = evaluator.EventAlarmEvaluator.from_conf(self.conf,
                                                     timeline=self.timeline)
        self.addCleanup(ev.close)
        return ev

    def test_reload_applies_at_once_and_keeps_states(self):
        self.write(alarm('a', alarm_actions=[f'{self.receiver.url}/a']))
        ev = self.from_file()
        self.run_actions(ev, [make_event()])
        self.write(alarm('a', alarm_actions=[f'{self.receiver.url}/a']),
                   alarm('b', alarm_actions=[f'{self.receiver.url}/b']))
        self.assertTrue(ev.reload())
        self.assertEqual(['a', 'b'], [a.name for a in ev.alarms])
        ids = {a.name: a.alarm_id for a in ev.alarms}
        self.assertEqual({ids['a']: 'alarm', ids['b']: 'insufficient data'},
                         ev.states)
        # The very next event sees the new alarm.
        self.run_actions(ev, [make_event()])
        self.assertEqual(['/a', '/b'], sorted(
            a.path for a in self.receiver.wait_for(2, timeout=2)))

    def test_invalid_file_keeps_the_alarms_in_use(self):
        self.write(alarm('a'))
        ev = self.from_file()
        with open(self.path, 'w') as f:
            f.write('alarms:\n  - name: broken\n    event_rule: 7\n')
        with self.assertLogs('doctor_plugin.alarms.evaluator', 'ERROR') as cm:
            self.assertFalse(ev.reload())
        self.assertIn('event_rule', cm.output[0])
        self.assertIn('Keeping the alarms in use', cm.output[0])
        self.assertEqual(['a'], [a.name for a in ev.alarms])

    def test_unknown_action_scheme_on_reload_keeps_the_alarms(self):
        self.write(alarm('a'))
        ev = self.from_file()
        self.write(alarm('b', alarm_actions=['snmp://trap-host']))
        with self.assertLogs('doctor_plugin.alarms.evaluator', 'ERROR'):
            self.assertFalse(ev.reload())
        self.assertEqual(['a'], [a.name for a in ev.alarms])

    def test_a_changed_file_is_picked_up_by_the_periodic_check(self):
        self.write(alarm('a'))
        ev = self.from_file(interval=0.02)
        self.write(alarm('a'), alarm('b'))
        deadline = time.monotonic() + 5
        while len(ev.alarms) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(['a', 'b'], [a.name for a in ev.alarms])

    def test_missing_file(self):
        self.set_opts(group='alarms', definitions_file='no-such-4b1c.yaml')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                evaluator.EventAlarmEvaluator.from_conf,
                                self.conf)
        self.assertIn('[alarms] definitions_file', exc.problem)


class TestTransitionLog(WebhookTestCase):

    def test_one_line_per_batch(self):
        ev = self.make(*[alarm(f'a{i}', alarm_actions=['log://'])
                         for i in range(12)])
        with self.assertLogs('doctor_plugin.alarms.evaluator',
                             'INFO') as cm:
            concurrent.futures.wait(ev.evaluate([make_event()]), timeout=2)
        (line,) = [r for r in cm.records if 'transition' in r.getMessage()]
        message = line.getMessage()
        self.assertTrue(message.startswith('12 alarm transition(s): a0 '))
        self.assertIn('a9 (insufficient data -> alarm', message)
        self.assertNotIn('a10 ', message)
        self.assertTrue(message.endswith('; and 2 more'))
