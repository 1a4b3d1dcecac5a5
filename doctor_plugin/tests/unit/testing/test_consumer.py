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

"""Tests for doctor_plugin.testing.consumer."""

import http.client
import json
import socket
import time

import requests

from doctor_plugin.testing import consumer
from doctor_plugin.tests import base


def alarm_body(**overrides):
    body = {
        'alarm_id': 'a1', 'alarm_name': 'host-down', 'severity': 'critical',
        'previous': 'insufficient data', 'current': 'alarm',
        'reason': 'Event hits the query.',
        'reason_data': {'type': 'event', 'event': {
            'message_id': 'm1', 'event_type': 'compute.host.down',
            'traits': [['host', 1, 'compute-1'],
                       ['instance_count', 2, 2]]}},
    }
    body.update(overrides)
    return body


class TestConsumerServer(base.TestCase):

    def setUp(self):
        super().setUp()
        self.seen = []
        self.server = consumer.ConsumerServer(on_alarm=self.seen.append)
        self.server.start()
        self.addCleanup(self.server.stop)

    def post(self, path, data, **kwargs):
        return requests.post(self.server.url + path, data=data, timeout=2,
                             **kwargs)

    def test_url_is_loopback_with_the_bound_port(self):
        self.assertEqual(f'http://127.0.0.1:{self.server.server_port}',
                         self.server.url)
        self.assertNotEqual(0, self.server.server_port)

    def test_records_an_aodh_alarm(self):
        before = time.time()
        response = self.post('/tenants/a', json.dumps(alarm_body()),
                             headers={'X-Doctor-Event-Id': 'm1'})
        self.assertEqual(200, response.status_code)
        self.assertEqual({'status': 'received'}, response.json())
        (alarm,) = self.server.wait_for(1, timeout=1)
        self.assertEqual('/tenants/a', alarm.path)
        self.assertEqual(alarm_body(), alarm.body)
        self.assertEqual('m1', alarm.headers['X-Doctor-Event-Id'])
        self.assertTrue(before <= alarm.received_at <= time.time())
        self.assertEqual([alarm], self.seen)

    def test_trait_reads_the_event_in_reason_data(self):
        self.post('/', json.dumps(alarm_body()))
        (alarm,) = self.server.wait_for(1, timeout=1)
        self.assertEqual('compute-1', alarm.trait('host'))
        self.assertEqual(2, alarm.trait('instance_count'))
        self.assertIsNone(alarm.trait('project_id'))

    def test_trait_without_event(self):
        self.post('/', json.dumps(alarm_body(reason_data={})))
        (alarm,) = self.server.wait_for(1, timeout=1)
        self.assertIsNone(alarm.trait('host'))

    def test_rejects_non_json(self):
        response = self.post('/', b'{not json')
        self.assertEqual(400, response.status_code)
        self.assertEqual('body is not JSON', response.json()['error'])
        self.assertEqual([], self.server.alarms)

    def test_rejects_body_missing_aodh_fields(self):
        body = alarm_body()
        del body['severity'], body['reason_data']
        response = self.post('/', json.dumps(body))
        self.assertEqual(400, response.status_code)
        self.assertIn('missing severity, reason_data',
                      response.json()['error'])
        self.assertEqual([], self.server.alarms)

    def test_rejects_a_json_list(self):
        response = self.post('/', json.dumps([alarm_body()]))
        self.assertEqual(400, response.status_code)
        self.assertEqual([], self.server.alarms)

    def test_wait_for_times_out_with_what_arrived(self):
        self.post('/', json.dumps(alarm_body()))
        started = time.monotonic()
        alarms = self.server.wait_for(2, timeout=0.2)
        self.assertEqual(1, len(alarms))
        self.assertGreaterEqual(time.monotonic() - started, 0.2)

    def test_clear(self):
        self.post('/', json.dumps(alarm_body()))
        self.server.wait_for(1, timeout=1)
        self.server.clear()
        self.assertEqual([], self.server.alarms)


class TestStart(base.TestCase):

    def test_a_server_that_cannot_serve_says_why(self):
        server = consumer.ConsumerServer()
        self.addCleanup(server.stop)
        server.socket.close()
        started = time.monotonic()
        exc = self.assertRaises(RuntimeError, server.start)
        self.assertIn('did not start serving', str(exc))
        self.assertLess(time.monotonic() - started, 5)


class TestNotKeeping(base.TestCase):

    def test_alarms_go_to_on_alarm_only(self):
        seen = []
        with consumer.ConsumerServer(on_alarm=seen.append,
                                     keep=False) as server:
            response = requests.post(server.url + '/t', json=alarm_body(),
                                     timeout=2)
            self.assertEqual(200, response.status_code)
            self.assertEqual(['/t'], [a.path for a in seen])
            self.assertEqual([], server.alarms)


class TestWireFormat(base.TestCase):
    """HTTP/1.1 as webhook senders use it, and what they get wrong."""

    def setUp(self):
        super().setUp()
        self.server = consumer.ConsumerServer().start()
        self.addCleanup(self.server.stop)

    def connection(self):
        conn = http.client.HTTPConnection('127.0.0.1',
                                          self.server.server_port, timeout=2)
        self.addCleanup(conn.close)
        return conn

    def raw(self, data):
        with socket.create_connection(('127.0.0.1', self.server.server_port),
                                      timeout=2) as sock:
            sock.sendall(data)
            reply = b''
            while chunk := sock.recv(65536):
                reply += chunk
        return reply

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        conn = self.connection()
        for n in range(3):
            conn.request('POST', f'/t/{n}', json.dumps(alarm_body()),
                         {'Content-Type': 'application/json'})
            response = conn.getresponse()
            self.assertEqual(200, response.status)
            self.assertEqual({'status': 'received'},
                             json.loads(response.read()))
        self.assertEqual(['/t/0', '/t/1', '/t/2'],
                         [a.path for a in self.server.wait_for(3, 1)])

    def test_chunked_body(self):
        conn = self.connection()
        data = json.dumps(alarm_body()).encode()
        conn.request('POST', '/chunked', iter([data[:10], data[10:]]),
                     {'Transfer-Encoding': 'chunked'},
                     encode_chunked=True)
        self.assertEqual(200, conn.getresponse().status)
        self.assertEqual(alarm_body(), self.server.wait_for(1, 1)[0].body)

    def test_other_methods_are_not_allowed(self):
        conn = self.connection()
        conn.request('GET', '/')
        response = conn.getresponse()
        self.assertEqual(405, response.status)
        self.assertEqual('POST', response.getheader('Allow'))
        self.assertIn('GET is not allowed', json.loads(response.read())
                      ['error'])

    def test_malformed_request_line_is_refused(self):
        reply = self.raw(b'HELLO\r\n\r\n')
        self.assertTrue(reply.startswith(b'HTTP/1.1 400 '), reply)
        self.assertIn(b'not an HTTP/1.x request line', reply)

    def test_oversize_body_is_refused_unread(self):
        reply = self.raw(
            b'POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n'
            % (consumer.MAX_BODY_BYTES + 1))
        self.assertTrue(reply.startswith(b'HTTP/1.1 413 '), reply)
        self.assertEqual([], self.server.alarms)

    def test_http_1_0_closes_after_the_reply(self):
        body = json.dumps(alarm_body()).encode()
        reply = self.raw(b'POST /old HTTP/1.0\r\nContent-Length: %d\r\n'
                         b'\r\n%s' % (len(body), body))
        self.assertTrue(reply.startswith(b'HTTP/1.1 200 '), reply)
        self.assertIn(b'Connection: close', reply)
        self.assertEqual('/old', self.server.wait_for(1, 1)[0].path)


class TestContextManager(base.TestCase):

    def test_serves_inside_and_stops_after(self):
        with consumer.ConsumerServer() as server:
            url = server.url
            response = requests.post(url, json=alarm_body(), timeout=2)
            self.assertEqual(200, response.status_code)
            self.assertEqual(1, len(server.alarms))
        self.assertRaises(requests.ConnectionError, requests.post, url,
                          json=alarm_body(), timeout=1)
