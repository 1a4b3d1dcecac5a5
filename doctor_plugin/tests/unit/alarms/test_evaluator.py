"""Tests for doctor_plugin.alarms.evaluator."""

import concurrent.futures
import datetime
import json
import socket

from doctor_plugin.alarms import definitions
from doctor_plugin.alarms import evaluator
from doctor_plugin import consumer
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import webhook
from doctor_plugin.tests import base

DETECTED = datetime.datetime(2017, 4, 22, 12, 0, 0)


def closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


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
    raw.setdefault('event_rule', {'event_type': 'compute.host.down'})
    return dict(raw, name=name)


class EvaluatorTestCase(base.TestCase):

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
                         [a.name for a in ev.candidates('compute.host.down')])
        self.assertEqual(500, len(ev.candidates('compute.instance.update')))
        self.assertEqual([], ev.candidates('compute.host.up'))
        self.assertEqual(['vm-7'], self.names(ev, make_event(
            'compute.instance.update', instance_id='vm-7')))


class TestProjectScoping(EvaluatorTestCase):

    def setUp(self):
        super().setUp()
        self.evaluator = self.make(alarm('a', project_id='tenant-a'),
                                   alarm('admin'))

    def test_tenant_alarm_sees_its_project(self):
        self.assertEqual(['a', 'admin'],
                         self.names(self.evaluator, make_event()))

    def test_tenant_alarm_ignores_other_projects(self):
        self.assertEqual(['admin'], self.names(
            self.evaluator, make_event(project_id='tenant-b')))

    def test_tenant_alarm_ignores_events_without_project(self):
        self.assertEqual(['admin'], self.names(
            self.evaluator, make_event(project_id=None)))

    def test_tenant_id_trait_is_a_project(self):
        event = make_event(project_id=None, tenant_id='tenant-a')
        self.assertEqual('tenant-a', evaluator.event_project(event))
        self.assertEqual(['a', 'admin'], self.names(self.evaluator, event))


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

    def test_string_query_on_a_typed_trait(self):
        self.assertQuery(True, 'traits.instance_count', 'eq', '2', 'string')
        self.assertQuery(False, 'traits.instance_count', 'eq', 'two',
                         'string')

    def test_missing_trait_never_matches(self):
        self.assertQuery(False, 'traits.cause', 'ne', 'x', 'string')

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
        self.conf.register_opts(webhook.OPTS, group='notifier')
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
                             'value': 'compute-1'}])
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
