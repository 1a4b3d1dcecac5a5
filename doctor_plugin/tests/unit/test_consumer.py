"""Tests for doctor_plugin.consumer."""

import json
import time

import requests

from doctor_plugin import consumer
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


class TestContextManager(base.TestCase):

    def test_serves_inside_and_stops_after(self):
        with consumer.ConsumerServer() as server:
            url = server.url
            response = requests.post(url, json=alarm_body(), timeout=2)
            self.assertEqual(200, response.status_code)
            self.assertEqual(1, len(server.alarms))
        self.assertRaises(requests.ConnectionError, requests.post, url,
                          json=alarm_body(), timeout=1)
