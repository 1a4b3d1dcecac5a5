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

"""Tests of the http:// and https:// webhook notifier against real servers.

Every request goes over loopback: the consumer the demo uses for the
successes, a stub answering fixed statuses for the failures, a closed port
for refused connections and a slow stub for timeouts.
"""

import datetime
import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid

import fixtures
import urllib3

from doctor_plugin.common import http as http_layer
from doctor_plugin.common import plugins
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import base as notifier_base
from doctor_plugin.notifiers import webhook
from doctor_plugin.testing import consumer
from doctor_plugin.tests import base

WAIT = 2.0
GENERATED = datetime.datetime(2024, 5, 1, 12, 0, 0, 250000)


def make_event(event_type='compute.host.down', **traits):
    traits = traits or {'host': 'compute-1', 'status': 'down'}
    return event_model.Event.create(event_type, traits, generated=GENERATED)


def make_alarm(event):
    return notifier_base.AlarmNotification(
        alarm_id='5b3e1f7c-6a55-4d36-9d1a-0c1bd0e7f1a2',
        alarm_name='host-down', severity='moderate', previous='ok',
        current='alarm',
        reason=f'Event <id={event.message_id},event_type='
               f'{event.event_type}> hits the query <query=[]>.',
        reason_data={'type': 'event', 'event': event.serialize()})


class _StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server: 'StubServer'

    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        status = self.server.next_status()
        if self.server.delay:
            time.sleep(self.server.delay)
        body = json.dumps({'error': f'stub says {status}'}).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        if 300 <= status < 400:
            self.send_header('Location', '/elsewhere')
        if self.server.close:
            self.send_header('Connection', 'close')
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class StubServer(http.server.ThreadingHTTPServer):
    """Answer POSTs with the given statuses in turn (the last repeats)."""

    daemon_threads = True

    def __init__(self, statuses, delay=0.0, close=False):
        super().__init__(('127.0.0.1', 0), _StubHandler)
        self.statuses = list(statuses)
        self.delay = delay
        self.close = close
        self.requests = 0
        self._lock = threading.Lock()

    def next_status(self):
        with self._lock:
            self.requests += 1
            if len(self.statuses) > 1:
                return self.statuses.pop(0)
            return self.statuses[0]

    def handle_error(self, request, client_address):
        # The client gave up on a slow answer; nothing to report.
        pass

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.server_address[1]


closed_port = base.closed_port


class WebhookTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        # Proxies from the environment must not see loopback requests.
        for name in ('http_proxy', 'https_proxy', 'HTTP_PROXY',
                     'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'):
            self.useFixture(fixtures.EnvironmentVariable(name))

    def start_consumer(self):
        server = consumer.ConsumerServer(port=0).start()
        self.addCleanup(server.stop)
        return server

    def start_stub(self, statuses, delay=0.0, close=False):
        server = StubServer(statuses, delay, close)
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={'poll_interval': 0.05},
                                  daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server

    def notifier(self, url):
        notifier = webhook.WebhookAction(self.conf, url)
        self.addCleanup(notifier.close)
        return notifier


class TestAlarmDelivery(WebhookTestCase):

    def test_alarm_is_posted_once_as_aodh_body(self):
        server = self.start_consumer()
        first = make_event()
        alarm = make_alarm(first)
        notifier = self.notifier(server.url + '/alarms')

        notifier.notify(alarm)

        received = server.wait_for(1, WAIT)
        time.sleep(0.05)
        self.assertEqual(1, len(server.alarms))
        self.assertEqual('/alarms', received[0].path)
        self.assertEqual(alarm.as_body(), received[0].body)
        headers = {k.lower(): v for k, v in received[0].headers.items()}
        self.assertEqual('application/json', headers['content-type'])
        self.assertRegex(headers['x-openstack-request-id'],
                         r'^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-'
                         r'[0-9a-f]{4}-[0-9a-f]{12}$')
        self.assertEqual(first.message_id, headers['x-doctor-event-id'])

    def test_each_request_has_its_own_request_id(self):
        server = self.start_consumer()
        event = make_event()
        notifier = self.notifier(server.url)

        notifier.notify(make_alarm(event))
        notifier.notify(make_alarm(event))

        ids = {a.headers['x-openstack-request-id']
               for a in server.wait_for(2, WAIT)}
        self.assertEqual(2, len(ids))

    def test_load_through_entry_point(self):
        server = self.start_consumer()
        for url in (server.url, 'https://consumer.example.com/alarm'):
            notifier = plugins.load_notifier(self.conf, url)
            self.addCleanup(notifier.close)
            self.assertIsInstance(notifier, webhook.WebhookNotifier)
        event = make_event()
        action = plugins.load_alarm_action(self.conf, server.url)
        self.addCleanup(action.close)
        self.assertIsInstance(action, webhook.WebhookAction)
        action.notify(make_alarm(event))
        self.assertEqual(1, len(server.wait_for(1, WAIT)))


class TestSynthesisedAlarms(WebhookTestCase):
    """A pipeline sink's events are each posted as Aodh would report it."""

    def notifier(self, url):
        notifier = webhook.WebhookNotifier(self.conf, url)
        self.addCleanup(notifier.close)
        return notifier

    def test_one_post_per_event(self):
        server = self.start_consumer()
        events = [make_event(host='compute-1', status='down'),
                  make_event('compute.instance.down', instance='vm-1')]
        notifier = self.notifier(server.url + '/hook')

        notifier.notify(events)

        received = server.wait_for(2, WAIT)
        self.assertEqual(2, len(received))
        by_event = {a.headers['X-Doctor-Event-Id']: a for a in received}
        self.assertEqual({e.message_id for e in events}, set(by_event))
        for event in events:
            body = by_event[event.message_id].body
            self.assertEqual(f'doctor:{event.event_type}',
                             body['alarm_name'])
            self.assertEqual(
                f'Event <id={event.message_id},event_type='
                f'{event.event_type}> received.', body['reason'])
            self.assertEqual('event', body['reason_data']['type'])
            self.assertEqual(event, event_model.Event.deserialize(
                body['reason_data']['event']))
            self.assertEqual(('ok', 'alarm'),
                             (body['previous'], body['current']))
            self.assertEqual('critical', body['severity'])
        self.assertEqual('compute-1',
                         by_event[events[0].message_id].trait('host'))

    def test_alarm_id_is_stable_per_url_and_event_type(self):
        url = 'http://127.0.0.1:9/hook?tenant=a'
        one = self.notifier(url)
        two = self.notifier(url + '&doctor-timeout=1')
        with_user = self.notifier('http://user:pw@127.0.0.1:9/hook?tenant=a')
        other_url = self.notifier('http://127.0.0.1:9/other')

        def alarm_id(notifier, event_type='compute.host.down'):
            return notifier.alarm_from_event(make_event(event_type)).alarm_id

        first = alarm_id(one)
        self.assertEqual(uuid.UUID(first).version, 5)
        self.assertEqual(first, alarm_id(one))
        self.assertEqual(first, alarm_id(two))
        self.assertEqual(first, alarm_id(with_user))
        self.assertNotEqual(first, alarm_id(other_url))
        self.assertNotEqual(first, alarm_id(one, 'compute.instance.down'))

    def test_severity_from_trait_or_default(self):
        notifier = self.notifier('http://127.0.0.1:9/')

        def severity(**traits):
            return notifier.alarm_from_event(
                make_event(**traits)).severity

        self.assertEqual('low', severity(host='h', severity='low'))
        self.assertEqual('moderate', severity(host='h', severity='Moderate'))
        self.assertEqual('critical', severity(host='h', severity='fatal'))
        self.assertEqual('critical', severity(host='h'))

        self.set_opts('notifier', default_severity='moderate')
        notifier = self.notifier('http://127.0.0.1:9/')
        self.assertEqual('moderate', notifier.alarm_from_event(
            make_event(host='h', severity='unknown')).severity)

    def test_transition_down_and_up(self):
        notifier = self.notifier('http://127.0.0.1:9/')

        def transition(event_type, **traits):
            alarm = notifier.alarm_from_event(make_event(event_type,
                                                         **traits))
            return alarm.previous, alarm.current

        self.assertEqual(('ok', 'alarm'),
                         transition('compute.host.down', host='h'))
        self.assertEqual(('ok', 'alarm'),
                         transition('compute.host.down', status='up'))
        self.assertEqual(('alarm', 'ok'),
                         transition('compute.host.status', status='up'))
        self.assertEqual(('alarm', 'ok'),
                         transition('compute.host.status', status='UP'))
        self.assertEqual(('ok', 'alarm'),
                         transition('compute.host.status', status='down'))


class TestUrlParameters(WebhookTestCase):

    def test_doctor_parameters_are_stripped_others_kept(self):
        server = self.start_consumer()
        notifier = self.notifier(
            server.url + '/hook?doctor-timeout=1.5&tenant=a%20b&x=1'
                         '&doctor-ssl-verify=false')
        event = make_event()

        notifier.notify(make_alarm(event))

        self.assertEqual('/hook?tenant=a%20b&x=1',
                         server.wait_for(1, WAIT)[0].path)
        self.assertEqual(1.5, notifier.timeout)

    def test_userinfo_is_sent_as_basic_auth(self):
        server = self.start_consumer()
        url = server.url.replace('http://', 'http://doctor:s3cret@')
        notifier = self.notifier(url + '/hook')
        event = make_event()

        notifier.notify(make_alarm(event))

        auth = server.wait_for(1, WAIT)[0].headers['Authorization']
        self.assertEqual('Basic ZG9jdG9yOnMzY3JldA==', auth)
        self.assertNotIn('s3cret', notifier.safe_url)

    def test_invalid_parameters(self):
        for url, text in (
                ('http://h/?doctor-timeout=soon', 'doctor-timeout'),
                ('http://h/?doctor-timeout=0.01', 'at least 0.1'),
                ('http://h/?doctor-timeout=inf', 'doctor-timeout'),
                ('https://h/?doctor-ssl-verify=maybe', 'true or false'),
                ('http://h/?doctor-retries=3',
                 'doctor-ssl-verify, doctor-timeout'),
                ('http:///path', 'no host')):
            exc = self.assertRaises(exceptions.ConfigurationError,
                                    webhook.WebhookNotifier, self.conf, url)
            self.assertIn(text, str(exc), url)

    def test_timeout_option_and_override(self):
        self.set_opts('notifier', webhook_timeout=0.5)
        self.assertEqual(0.5, self.notifier('http://h/').timeout)
        self.assertEqual(
            3.0, self.notifier('http://h/?doctor-timeout=3').timeout)


class TestDeliveryErrors(WebhookTestCase):

    def test_server_error_is_retried_then_reported(self):
        self.set_opts('notifier', webhook_max_retries=2)
        server = self.start_stub([500])
        notifier = self.notifier(server.url + '/hook?token=abc')
        event = make_event()

        exc = self.assertRaises(exceptions.DeliveryError, notifier.notify,
                                make_alarm(event))

        self.assertEqual(3, server.requests)
        message = str(exc)
        self.assertIn(server.url + '/hook', message)
        self.assertNotIn('token=abc', message)
        self.assertIn('HTTP 500', message)
        self.assertIn('stub says 500', message)
        self.assertIn('check its logs', message)

    def test_server_error_then_success_is_delivered(self):
        self.set_opts('notifier', webhook_max_retries=2)
        server = self.start_stub([503, 502, 200])
        notifier = self.notifier(server.url)
        event = make_event()

        notifier.notify(make_alarm(event))

        self.assertEqual(3, server.requests)

    def test_no_retries_when_disabled(self):
        self.set_opts('notifier', webhook_max_retries=0)
        server = self.start_stub([503, 200])
        notifier = self.notifier(server.url)
        event = make_event()

        self.assertRaises(exceptions.DeliveryError, notifier.notify,
                          make_alarm(event))
        self.assertEqual(1, server.requests)

    def test_client_error_is_not_retried(self):
        server = self.start_stub([404])
        notifier = self.notifier(server.url + '/wrong')
        event = make_event()

        exc = self.assertRaises(exceptions.DeliveryError, notifier.notify,
                                make_alarm(event))

        self.assertEqual(1, server.requests)
        self.assertIn('HTTP 404', str(exc))
        self.assertIn(server.url + '/wrong', str(exc))
        self.assertIn('Check the URL path', str(exc))

    def test_redirect_is_not_followed(self):
        server = self.start_stub([307])
        notifier = self.notifier(server.url)
        event = make_event()

        exc = self.assertRaises(exceptions.DeliveryError, notifier.notify,
                                make_alarm(event))

        self.assertIn('HTTP 307', str(exc))
        self.assertIn('Redirects are not followed', str(exc))

    def test_connection_refused(self):
        self.set_opts('notifier', webhook_max_retries=1)
        port = closed_port()
        notifier = self.notifier(
            f'http://doctor:s3cret@127.0.0.1:{port}/hook?token=abc')
        event = make_event()

        started = time.monotonic()
        exc = self.assertRaises(exceptions.DeliveryError, notifier.notify,
                                make_alarm(event))

        self.assertLess(time.monotonic() - started, WAIT)
        message = str(exc)
        self.assertIn(f'http://127.0.0.1:{port}/hook', message)
        self.assertIn('Connection refused', message)
        self.assertIn('reachable', message)
        self.assertNotIn('s3cret', message)
        self.assertNotIn('doctor:', message)
        self.assertNotIn('token=abc', message)
        self.assertIsNotNone(exc.__cause__)

    def test_timeout_is_reported_and_not_retried(self):
        self.set_opts('notifier', webhook_max_retries=2)
        server = self.start_stub([200], delay=1.0)
        notifier = self.notifier(server.url + '/?doctor-timeout=0.2')
        event = make_event()

        started = time.monotonic()
        exc = self.assertRaises(exceptions.DeliveryError, notifier.notify,
                                make_alarm(event))
        elapsed = time.monotonic() - started

        self.assertLess(elapsed, 0.9)
        self.assertIn('no response within 0.2s', str(exc))
        self.assertIn('webhook_timeout', str(exc))
        self.assertEqual(1, server.requests)

    def test_failure_in_a_batch_says_how_many_were_delivered(self):
        self.set_opts('notifier', webhook_max_retries=0)
        server = self.start_stub([200, 500])
        notifier = self.notifier(server.url)

        notifier = webhook.WebhookNotifier(self.conf, server.url)
        self.addCleanup(notifier.close)
        exc = self.assertRaises(exceptions.DeliveryError, notifier.notify,
                                [make_event(), make_event(), make_event()])

        self.assertIn('HTTP 500', str(exc))
        self.assertIn('1 of 3 events', str(exc))
        self.assertEqual(2, server.requests)


class TestSession(WebhookTestCase):

    def test_pool_and_retries_follow_the_options(self):
        self.set_opts('notifier', webhook_pool_size=3, webhook_max_retries=4)
        notifier = self.notifier('https://h/')

        self.assertEqual(3, notifier.client.pool._maxsize)
        self.assertEqual(4, notifier._max_retries)
        self.assertIn(500, webhook._RETRY_STATUSES)
        self.assertFalse(http_layer.ReadTimeout.retryable)
        self.assertTrue(http_layer.ConnectFailed.retryable)
        self.assertNotIn(404, webhook._RETRY_STATUSES)

    def test_connection_is_reused(self):
        server = self.start_consumer()
        notifier = self.notifier(server.url)
        event = make_event()

        notifier.notify(make_alarm(event))
        (first,) = notifier.client.pool._idle
        notifier.notify(make_alarm(event))

        self.assertEqual(2, len(server.wait_for(2, WAIT)))
        self.assertEqual([first], list(notifier.client.pool._idle))

    def test_connection_the_consumer_closes_is_not_kept(self):
        server = self.start_stub([200, 200], close=True)
        notifier = self.notifier(server.url)
        event = make_event()

        notifier.notify(make_alarm(event))
        notifier.notify(make_alarm(event))

        self.assertEqual(2, server.requests)
        self.assertEqual(0, len(notifier.client.pool))

    def test_idle_connection_closed_by_the_consumer_is_replaced(self):
        with socket.socket() as listener:
            listener.bind(('127.0.0.1', 0))
            listener.listen(1)
            conn = http.client.HTTPConnection(*listener.getsockname())
            conn.connect()
            accepted, _ = listener.accept()
            self.assertFalse(http_layer._dropped(conn))
            accepted.close()
            self.assertTrue(http_layer._dropped(conn))
            conn.close()
            self.assertTrue(http_layer._dropped(conn))

    def test_close_closes_the_connections(self):
        server = self.start_consumer()
        notifier = webhook.WebhookAction(self.conf, server.url)
        event = make_event()
        notifier.notify(make_alarm(event))
        self.assertEqual(1, len(notifier.client.pool))

        notifier.close()

        self.assertEqual(0, len(notifier.client.pool))
        # A later POST connects again.
        notifier.notify(make_alarm(event))
        self.assertEqual(2, len(server.wait_for(2, WAIT)))

    def test_through_a_proxy_urllib3_carries_the_posts(self):
        self.useFixture(fixtures.EnvironmentVariable(
            'http_proxy', 'http://127.0.0.1:%d' % closed_port()))
        self.useFixture(fixtures.EnvironmentVariable('no_proxy', ''))
        self.useFixture(fixtures.EnvironmentVariable('NO_PROXY', ''))
        notifier = self.notifier('http://consumer.example.com:9/hook')
        self.assertIsNone(notifier.client.pool)


class TestProxy(WebhookTestCase):
    """Proxies from the environment, read once at construction."""

    def test_http_proxy_forwards_the_absolute_url(self):
        proxy = self.start_stub([200])
        paths = []
        handle = urllib3.HTTPConnectionPool.urlopen

        def urlopen(pool, method, url, *args, **kwargs):
            paths.append((pool.host, pool.port, url))
            return handle(pool, method, url, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'urllib3.HTTPConnectionPool.urlopen', urlopen))
        self.useFixture(fixtures.EnvironmentVariable(
            'http_proxy', 'http://pxuser:pxpw@127.0.0.1:%d'
            % proxy.server_address[1]))
        self.useFixture(fixtures.EnvironmentVariable('no_proxy', ''))
        self.useFixture(fixtures.EnvironmentVariable('NO_PROXY', ''))
        notifier = self.notifier('http://consumer.example.com:9/hook?a=1'
                                 '&doctor-timeout=1')
        event = make_event()

        notifier.notify(make_alarm(event))

        self.assertEqual(1, proxy.requests)
        self.assertEqual(
            [('127.0.0.1', proxy.server_address[1],
              'http://consumer.example.com:9/hook?a=1')], paths)
        self.assertIn('Proxy-Authorization',
                      notifier.client.proxy_manager.proxy_headers)

    def test_no_proxy_is_honoured(self):
        server = self.start_consumer()
        self.useFixture(fixtures.EnvironmentVariable(
            'http_proxy', 'http://127.0.0.1:%d' % closed_port()))
        self.useFixture(fixtures.EnvironmentVariable('no_proxy',
                                                     '127.0.0.1'))
        notifier = self.notifier(server.url)
        event = make_event()

        notifier.notify(make_alarm(event))

        self.assertEqual(1, len(server.wait_for(1, WAIT)))
        self.assertNotIsInstance(notifier.client.proxy_manager,
                                 urllib3.ProxyManager)

    def test_unreachable_proxy_is_reported(self):
        self.set_opts('notifier', webhook_max_retries=0)
        self.useFixture(fixtures.EnvironmentVariable(
            'http_proxy', 'http://127.0.0.1:%d' % closed_port()))
        self.useFixture(fixtures.EnvironmentVariable('no_proxy', ''))
        self.useFixture(fixtures.EnvironmentVariable('NO_PROXY', ''))
        notifier = self.notifier('http://consumer.example.com/hook')
        event = make_event()

        exc = self.assertRaises(exceptions.DeliveryError, notifier.notify,
                                make_alarm(event))

        self.assertIn('ProxyError', str(exc))
        self.assertIn('reachable', str(exc))


class TestTLS(WebhookTestCase):
    """https:// against a consumer with a self-signed certificate."""

    def setUp(self):
        super().setUp()
        openssl = shutil.which('openssl')
        if openssl is None:
            self.skipTest('the openssl command is needed to make a '
                          'certificate')
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        self.cert = os.path.join(tmp, 'cert.pem')
        self.key = os.path.join(tmp, 'key.pem')
        subprocess.run(
            [openssl, 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
             'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
             '-subj', '/CN=127.0.0.1',
             '-addext', 'subjectAltName=IP:127.0.0.1',
             '-addext', 'basicConstraints=critical,CA:TRUE',
             '-addext', 'keyUsage=digitalSignature,keyCertSign',
             '-keyout', self.key, '-out', self.cert],
            check=True, capture_output=True, timeout=10)

    def start_tls_consumer(self, require_client_cert=False):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.cert)
        server = consumer.ConsumerServer(port=0, ssl_context=context)
        server.start()
        self.addCleanup(server.stop)
        return server, server.url.replace('http://', 'https://')

    def post(self, url):
        notifier = self.notifier(url)
        event = make_event()
        notifier.notify(make_alarm(event))

    def test_unknown_certificate_is_refused(self):
        server, url = self.start_tls_consumer()
        exc = self.assertRaises(exceptions.DeliveryError, self.post, url)
        self.assertIn('CERTIFICATE_VERIFY_FAILED', str(exc))
        self.assertIn('webhook_ca_bundle', str(exc))
        self.assertEqual([], server.alarms)

    def test_ssl_verify_false_in_url(self):
        server, url = self.start_tls_consumer()
        self.post(url + '/?doctor-ssl-verify=false')
        self.assertEqual('/', server.wait_for(1, WAIT)[0].path)

    def test_ssl_verify_option(self):
        self.set_opts('notifier', webhook_ssl_verify=False)
        server, url = self.start_tls_consumer()
        self.post(url)
        self.assertEqual(1, len(server.wait_for(1, WAIT)))

    def test_ca_bundle(self):
        self.set_opts('notifier', webhook_ca_bundle=self.cert)
        server, url = self.start_tls_consumer()
        self.post(url)
        self.assertEqual(1, len(server.wait_for(1, WAIT)))

    def test_client_certificate_and_key(self):
        server, url = self.start_tls_consumer(require_client_cert=True)
        self.set_opts('notifier', webhook_ca_bundle=self.cert)
        self.assertRaises(exceptions.DeliveryError, self.post, url)

        self.set_opts('notifier', webhook_client_cert=self.cert,
                      webhook_client_key=self.key)
        self.post(url)
        self.assertEqual(1, len(server.wait_for(1, WAIT)))

    def test_client_certificate_holding_its_key(self):
        both = os.path.join(os.path.dirname(self.cert), 'both.pem')
        with open(both, 'w') as out:
            for path in (self.cert, self.key):
                with open(path) as part:
                    out.write(part.read())
        server, url = self.start_tls_consumer(require_client_cert=True)
        self.set_opts('notifier', webhook_ca_bundle=self.cert,
                      webhook_client_cert=both)
        self.post(url)
        self.assertEqual(1, len(server.wait_for(1, WAIT)))

    def test_tls_files_are_checked_at_start(self):
        missing = self.cert + '.missing'
        for opts, text in (
                ({'webhook_ca_bundle': missing}, 'webhook_ca_bundle'),
                ({'webhook_client_cert': missing}, 'webhook_client_cert'),
                ({'webhook_client_key': self.key}, 'without '
                                                   'webhook_client_cert')):
            self.set_opts('notifier', **opts)
            exc = self.assertRaises(exceptions.ConfigurationError,
                                    webhook.WebhookNotifier, self.conf,
                                    'https://h/')
            self.assertIn(text, str(exc))
            for name in opts:
                self.conf.clear_override(name, group='notifier')
