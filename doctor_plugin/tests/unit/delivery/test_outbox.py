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

"""The outbox: recorded deliveries survive outages, restarts and deadlines.

Consumers are real HTTP servers on loopback; "down" is a port nothing
listens on yet, which a consumer then takes.
"""

import collections
import hashlib
import hmac
import io
import json
import sys
import threading
import time
from unittest import mock

import fixtures
import oslo_messaging
import sqlalchemy as sa

from doctor_plugin.alarms import definitions
from doctor_plugin.alarms import evaluator
from doctor_plugin.cmd import cli
from doctor_plugin import delivery
from doctor_plugin.delivery import rejects
from doctor_plugin.delivery import store as store_mod
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import engine
from doctor_plugin.inspector import listener
from doctor_plugin.notifiers import messaging as messaging_notifier
from doctor_plugin import pipeline
from doctor_plugin.testing import consumer
from doctor_plugin.tests import base


def host_event(seq=0, host='compute-1', event_type='compute.host.down'):
    return event_model.Event.create(event_type, {'host': host, 'seq': seq})


class OutboxTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        # Fail fast, retry fast.
        self.set_opts(group='notifier', webhook_max_retries=0,
                      webhook_timeout=1.0)
        self.set_opts(group='delivery', retry_initial_interval=0.05,
                      retry_max_interval=0.2, poll_interval=0.1)
        self.port = base.closed_port()
        self.url = f'http://127.0.0.1:{self.port}/alarm'

    def consumer_up(self):
        receiver = consumer.ConsumerServer(port=self.port).start()
        self.addCleanup(receiver.stop)
        return receiver

    def make_pipeline(self, *urls):
        pipe = pipeline.Pipeline(
            self.conf, pipeline.PipelineDefinition.from_dict({
                'sources': [{'name': 's', 'events': ['*'], 'sinks': ['k']}],
                'sinks': [{'name': 'k',
                           'notifiers': list(urls or [self.url])}]}))
        self.addCleanup(pipe.close)
        return pipe

    def rows(self, status=None):
        store = store_mod.DeliveryStore(self.conf.delivery.connection)
        self.addCleanup(store.close)
        return store.find(status)

    def wait_for(self, predicate, timeout=5.0):
        return base.wait_until(predicate, timeout, 0.02)


class TestRetries(OutboxTestCase):

    def test_failed_delivery_is_retried_until_the_consumer_is_back(self):
        pipe = self.make_pipeline()
        ev = host_event()
        # Recorded, and not a failure of the pipeline: it is retried.
        self.assertEqual({}, pipe.publish([ev]))
        [row] = self.rows()
        self.assertEqual(store_mod.PENDING, row.status)
        self.assertEqual(ev.message_id, row.event_id)
        self.assertTrue(self.wait_for(lambda: self.rows()[0].attempts >= 2))

        receiver = self.consumer_up()
        [got] = receiver.wait_for(1, timeout=5)
        self.assertEqual(ev.message_id, got.headers['X-Doctor-Event-Id'])
        self.assertEqual('compute.host.down',
                         got.body['reason_data']['event']['event_type'])
        # Delivered rows are forgotten.
        self.assertTrue(self.wait_for(lambda: not self.rows()))
        self.assertEqual(0, pipe.outbox.pending())

    def test_a_delivered_row_not_yet_removed_is_not_resumed(self):
        receiver = self.consumer_up()
        pipe = self.make_pipeline()
        with mock.patch.object(pipe.outbox, '_flush'):
            pipe.publish([host_event()])
            self.assertEqual(1, len(receiver.wait_for(1, timeout=5)))
            # The row is still pending in the database; the poller looks.
            self.assertEqual(1, len(self.rows(store_mod.PENDING)))
            pipe.outbox._poll()
        self.assertEqual(0, pipe.outbox.stats['resumed'])
        time.sleep(0.3)
        self.assertEqual(1, len(receiver.alarms))
        self.assertTrue(self.wait_for(lambda: not self.rows()))

    def test_a_caller_makes_only_its_own_deliveries(self):
        receiver = consumer.ConsumerServer(port=self.port, delay=0.2)
        receiver.start()
        self.addCleanup(receiver.stop)
        pipe = self.make_pipeline()
        took = []

        def first():
            started = time.monotonic()
            pipe.publish([host_event(0)])
            took.append(time.monotonic() - started)

        thread = threading.Thread(target=first)
        thread.start()
        self.assertTrue(self.wait_for(lambda: pipe.outbox._lanes))
        # Two more of the same alarm queue behind the first one.
        pipe.publish([host_event(1)])
        pipe.publish([host_event(2)])
        thread.join(5)
        # The first caller made its own (0.2 s), not the two behind it.
        self.assertLess(took[0], 0.39)
        got = receiver.wait_for(3, timeout=5)
        self.assertEqual([0, 1, 2], [a.trait('seq') for a in got])

    def test_alarm_transitions_arrive_in_order_after_an_outage(self):
        alarms = definitions.parse({'alarms': [
            {'name': f'tenant-{t}', 'project_id': f'tenant-{t}',
             'repeat_actions': True, 'alarm_actions': [self.url],
             'event_rule': {'event_type': 'compute.host.down'}}
            for t in range(3)]})
        ev = evaluator.EventAlarmEvaluator(self.conf, alarms,
                                           timeline=self.timeline)
        self.addCleanup(ev.close)
        for seq in range(30):
            ev.evaluate([event_model.Event.create('compute.host.down', {
                'host': 'compute-1', 'seq': seq,
                'project_id': f'tenant-{seq % 3}'})])
        self.assertEqual(30, len(self.rows()))
        time.sleep(0.3)  # a few failed attempts

        receiver = self.consumer_up()
        got = receiver.wait_for(30, timeout=10)
        self.assertEqual(30, len(got))
        for t in range(3):
            seqs = [a.trait('seq') for a in got
                    if a.body['alarm_name'] == f'tenant-{t}']
            self.assertEqual(list(range(t, 30, 3)), seqs)

    def test_backoff_grows_to_the_maximum_with_jitter(self):
        self.set_opts(group='delivery', retry_initial_interval=1.0,
                      retry_max_interval=4.0)
        box = delivery.get_outbox(self.conf)
        self.addCleanup(delivery.release, box)
        waits = []
        for attempts in range(1, 7):
            d = store_mod.Delivery(id=attempts, key='k', target=self.url,
                                   event_id='e', label='l', payload=b'',
                                   deadline=time.time() + 100,
                                   attempts=attempts - 1)
            box._lanes['k'] = collections.deque()
            before = time.time()
            with mock.patch.object(box, '_save'):
                box._failed(d, exceptions.DeliveryError('down'))
            waits.append(d.next_attempt - before)
        for wait, cap in zip(waits, (1, 2, 4, 4, 4, 4)):
            self.assertGreaterEqual(wait, cap / 2 - 0.01)
            self.assertLessEqual(wait, cap + 0.01)
        self.assertGreater(len({round(w, 3) for w in waits[2:]}), 1,
                           'no jitter')

    def test_deadline_dead_letters_and_cli_retry_delivers(self):
        self.set_opts(group='delivery', deadline=1.0)
        pipe = self.make_pipeline()
        ev = host_event()
        pipe.publish([ev])
        self.assertTrue(self.wait_for(
            lambda: self.rows(store_mod.DEAD), timeout=5))
        [dead] = self.rows(store_mod.DEAD)
        self.assertIn('could not post alarm', dead.last_error)
        self.assertEqual(0, pipe.outbox.pending())

        out = io.StringIO()
        with mock.patch('sys.stdout', out):
            self.assertEqual(0, cli.main(self.cli_args('list')))
        self.assertIn('0 pending, 1 dead', out.getvalue())
        self.assertIn(f'{dead.id} dead', out.getvalue())
        self.assertIn(ev.message_id, out.getvalue())

        receiver = self.consumer_up()
        out = io.StringIO()
        with mock.patch('sys.stdout', out):
            self.assertEqual(0, cli.main(self.cli_args('retry',
                                                       str(dead.id))))
        self.assertIn('1 deliveries are pending again', out.getvalue())
        [got] = receiver.wait_for(1, timeout=5)
        self.assertEqual(ev.message_id, got.headers['X-Doctor-Event-Id'])
        self.assertTrue(self.wait_for(lambda: not self.rows()))

    def cli_args(self, *args):
        path = self.useFixture(fixtures.TempDir()).path
        conf_file = f'{path}/doctor_plugin.conf'
        with open(conf_file, 'w') as f:
            f.write(f'[delivery]\nconnection = '
                    f'{self.conf.delivery.connection}\n')
        return ['deliveries', *args, '--config-file', conf_file]

    def test_cli_retry_needs_ids_or_all_dead(self):
        err = io.StringIO()
        with mock.patch('sys.stderr', err):
            self.assertEqual(2, cli.main(self.cli_args('retry')))
        self.assertIn('--all-dead', err.getvalue())


class TestRestart(OutboxTestCase):

    def test_pending_deliveries_resume_in_a_new_process_outbox(self):
        pipe = self.make_pipeline()
        events = [host_event(seq) for seq in range(5)]
        for ev in events:
            pipe.publish([ev])
        pipe.close()  # as a stop; the rows stay pending
        self.assertEqual(5, len(self.rows(store_mod.PENDING)))

        receiver = self.consumer_up()
        box = delivery.get_outbox(self.conf)
        self.addCleanup(delivery.release, box)
        got = receiver.wait_for(5, timeout=5)
        self.assertEqual([e.message_id for e in events],
                         [a.headers['X-Doctor-Event-Id'] for a in got])
        self.assertEqual(5, box.stats['resumed'])

    def test_another_owners_deliveries_are_not_taken(self):
        pipe = self.make_pipeline()
        pipe.publish([host_event()])
        pipe.close()
        self.set_opts(group='delivery', owner='another-inspector')
        box = delivery.get_outbox(self.conf)
        self.addCleanup(delivery.release, box)
        self.assertEqual(0, box.stats['resumed'])
        self.assertEqual(1, len(self.rows(store_mod.PENDING)))


class TestRecording(OutboxTestCase):

    def test_unrecordable_batch_is_sent_once_without_a_record(self):
        receiver = self.consumer_up()
        pipe = self.make_pipeline()
        with pipe.outbox.store.engine.begin() as conn:
            conn.execute(sa.text('DROP TABLE doctor_deliveries'))
        ev = host_event()
        with self.assertLogs('doctor_plugin.delivery.deliverer',
                             'ERROR') as logs:
            self.assertEqual({}, pipe.publish([ev]))
        self.assertIn('without retries', logs.output[0])
        [got] = receiver.wait_for(1, timeout=5)
        self.assertEqual(ev.message_id, got.headers['X-Doctor-Event-Id'])

    def test_not_durable_makes_no_database(self):
        self.set_opts(group='delivery', durable=False)
        pipe = self.make_pipeline()
        self.assertIsNone(pipe.outbox)
        self.assertIsNone(delivery.get_outbox(self.conf))

    def test_bad_database_url_is_a_configuration_error(self):
        self.set_opts(group='delivery',
                      connection='nosuchdb://user:hunter2@host/x')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                self.make_pipeline)
        self.assertIn('[delivery] connection', str(exc))
        self.assertNotIn('hunter2', str(exc))


class TestSignedWebhooks(OutboxTestCase):

    def test_signature_covers_timestamp_and_body(self):
        self.set_opts(group='notifier', webhook_signing_key='s3cret')
        receiver = self.consumer_up()
        pipe = self.make_pipeline()
        pipe.publish([host_event()])
        [got] = receiver.wait_for(1, timeout=5)
        timestamp = got.headers['X-Doctor-Timestamp']
        self.assertLess(abs(int(timestamp) - time.time()), 5)
        body = json.dumps(got.body).encode()
        expected = 'sha256=' + hmac.new(
            b's3cret', timestamp.encode() + b'.' + body,
            hashlib.sha256).hexdigest()
        self.assertEqual(expected, got.headers['X-Doctor-Signature'])

    def test_a_consumer_holding_the_key_takes_signed_alarms(self):
        self.set_opts(group='notifier', webhook_signing_key='s3cret')
        receiver = consumer.ConsumerServer(port=self.port,
                                           signing_key=b's3cret').start()
        self.addCleanup(receiver.stop)
        self.make_pipeline().publish([host_event()])
        self.assertEqual(1, len(receiver.wait_for(1, timeout=5)))
        self.assertEqual([], receiver.refused)

    def test_forged_alarms_are_refused_and_stay_pending(self):
        self.set_opts(group='notifier', webhook_signing_key='wrong')
        receiver = consumer.ConsumerServer(port=self.port,
                                           signing_key=b's3cret').start()
        self.addCleanup(receiver.stop)
        self.make_pipeline().publish([host_event()])
        self.assertTrue(self.wait_for(lambda: receiver.refused))
        self.assertEqual('the signature does not match the body',
                         receiver.refused[0])
        self.assertEqual([], receiver.alarms)
        self.assertIn('HTTP 401', self.rows()[0].last_error or '')

    def test_unsigned_without_a_key(self):
        receiver = self.consumer_up()
        self.make_pipeline().publish([host_event()])
        [got] = receiver.wait_for(1, timeout=5)
        self.assertNotIn('X-Doctor-Signature', got.headers)


class TestBusDeliveries(OutboxTestCase):

    def test_recorded_bus_message_keeps_its_message_id(self):
        self.set_opts(transport_url='fake://')
        notifier = messaging_notifier.MessagingNotifier(
            self.conf, 'messaging://?topic=t&notification_topic=n')
        self.addCleanup(notifier.close)
        ev = host_event()
        prepared = notifier.encode([ev])
        self.assertEqual(['events', 'notifications'],
                         [p.key for p in prepared])
        sent = []
        with mock.patch.object(messaging_notifier._TopicSender, 'send',
                               lambda self, *args: sent.append(args)):
            notifier.send(prepared[0])
            notifier.send(prepared[0])
        self.assertEqual(sent[0], sent[1])
        priority, event_type, payload, message_id = sent[0]
        self.assertEqual(('sample', 'event'), (priority, event_type))
        self.assertEqual(ev.message_id, payload[0]['message_id'])

    def test_first_attempt_sends_what_it_recorded_retries_the_record(self):
        self.set_opts(transport_url='fake://')
        pipe = self.make_pipeline('messaging://?topic=t&notification_topic=')
        sent = []
        failures = [oslo_messaging.MessageDeliveryFailure('broker away')]

        def send(sender, *args):
            sent.append(args)
            if failures:
                raise failures.pop()

        with mock.patch.object(messaging_notifier._TopicSender, 'send',
                               send), \
                mock.patch.object(messaging_notifier.jsonutils, 'loads',
                                  wraps=messaging_notifier.jsonutils.loads
                                  ) as loads:
            ev = host_event()
            self.assertEqual({}, pipe.publish([ev]))
            # The first attempt decoded nothing; it failed.
            self.assertEqual(1, len(sent))
            loads.assert_not_called()
            self.assertTrue(self.wait_for(lambda: len(sent) == 2))
            self.assertTrue(self.wait_for(lambda: not self.rows()))
        # The retry sent the recorded copy, the same message.
        self.assertEqual(1, loads.call_count)
        self.assertEqual(sent[0], sent[1])
        self.assertEqual(ev.message_id, sent[1][2][0]['message_id'])


class TestListenerAcknowledgement(OutboxTestCase):

    def endpoint(self, pipe, transformer):
        inspector = engine.Inspector(self.conf, pipe)
        self.addCleanup(inspector.close)
        box = delivery.get_outbox(self.conf)
        self.addCleanup(delivery.release, box)
        return listener.NotificationEndpoint(inspector, [transformer],
                                             rejects.Rejects(box))

    def test_requeued_when_the_events_cannot_be_published(self):
        self.set_opts(group='delivery', durable=False)
        pipe = self.make_pipeline()
        with mock.patch.object(listener, 'REQUEUE_DELAY', 0):
            result = self.endpoint(pipe, Transformer()).info(
                {}, 'nova', 'doctor.test', {'host': 'compute-1'},
                {'message_id': 'm-1'})
        self.assertEqual(oslo_messaging.NotificationResult.REQUEUE, result)

    def test_acknowledged_once_recorded(self):
        pipe = self.make_pipeline()
        result = self.endpoint(pipe, Transformer()).info(
            {}, 'nova', 'doctor.test', {'host': 'compute-1'},
            {'message_id': 'm-1'})
        self.assertIsNone(result)  # acknowledged
        self.assertEqual(1, len(self.rows(store_mod.PENDING)))

    def test_poison_message_is_kept_once_and_acknowledged(self):
        pipe = self.make_pipeline()
        endpoint = self.endpoint(pipe, Transformer(fail=KeyError('boom')))
        result = endpoint.info({}, 'nova', 'doctor.test', {'x': 1},
                               {'message_id': 'm-poison'})
        self.assertIsNone(result)
        self.assertEqual(1, endpoint.rejects.count)
        store = store_mod.DeliveryStore(self.conf.delivery.connection)
        self.addCleanup(store.close)
        [row] = store.rejected()
        self.assertEqual('m-poison', row['message_id'])
        self.assertIn('KeyError', row['reason'])
        self.assertEqual({'x': 1}, json.loads(row['body']))
        self.assertEqual([], self.rows())

    def test_a_payload_too_deep_to_write_back_is_still_kept(self):
        box = delivery.get_outbox(self.conf)
        self.addCleanup(delivery.release, box)
        deep: list = []
        for _ in range(sys.getrecursionlimit() + 100):
            deep = [deep]
        rejects.Rejects(box).reject(
            {'message_id': 'm-deep', 'event_type': 'doctor.test'}, deep,
            exceptions.InvalidPayload('', 'nested too deeply'))
        [row] = box.store.rejected()
        self.assertEqual('m-deep', row['message_id'])
        self.assertIn('nested too deeply to keep', row['body'])

    def test_events_over_the_limits_are_rejected(self):
        pipe = self.make_pipeline()
        inspector = engine.Inspector(self.conf, pipe)
        self.addCleanup(inspector.close)
        endpoint = listener.NotificationEndpoint(
            inspector, [Transformer()], rejects.Rejects(), limits=(8, 255))
        traits = {f't{i}': i for i in range(20)}
        self.assertIsNone(endpoint.info({}, 'nova', 'doctor.test', traits,
                                        {'message_id': 'm-big'}))
        self.assertEqual(1, endpoint.rejects.count)
        self.assertEqual([], self.rows())


class Transformer:
    event_types = ('doctor.test',)

    def __init__(self, fail=None):
        self.fail = fail

    def transform(self, payload, meta=None):
        if self.fail is not None:
            raise self.fail
        return [event_model.Event.create('compute.host.down', payload)]
