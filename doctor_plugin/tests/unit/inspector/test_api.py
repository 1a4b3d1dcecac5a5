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

"""Tests for doctor_plugin.inspector.api."""

import io
import json

import requests
import webob

from doctor_plugin.common import plugins
from doctor_plugin.inspector import api
from doctor_plugin.inspector import engine
from doctor_plugin import pipeline
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.testing import consumer
from doctor_plugin.tests import base
from doctor_plugin.tests import notifications
from doctor_plugin.topology import hosts as topology
from doctor_plugin.transformers import host_events


closed_port = base.closed_port


def doctor_body(host='compute-1', event_id='monitor_sample_event1'):
    """The body Doctor's sample monitor PUTs to the inspector."""
    return [{
        'id': 'monitor_sample_id1',
        'time': '2017-04-22T12:00:00.123456',
        'type': 'compute.host.down',
        'details': {'hostname': host, 'status': 'down',
                    'monitor': 'monitor_sample',
                    'monitor_event_id': event_id},
    }]


class APITestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.set_opts(group='notifier', webhook_max_retries=0)
        # These tests are about the API; fan-out has its own tests.
        self.set_opts(group='inspector', instance_events=False)
        self.topology = topology.HostTopology([
            topology.Instance('vm-1', 'tenant-a', 'compute-1'),
            topology.Instance('vm-2', 'tenant-b', 'compute-1'),
        ])
        self.recorder = notifications.BatchRecorder()
        self.secret = chain_mod.use_shared_secret(self.conf)
        self.auth = {'X-Auth-Token': self.secret}

    def make_app(self, urls=('log://',), routes=None):
        pipe = pipeline.Pipeline(
            self.conf, pipeline.PipelineDefinition.from_dict({
                'sources': [{'name': 'faults', 'events': ['*'],
                             'sinks': ['out']}],
                'sinks': [{'name': 'out', 'notifiers': list(urls)}]}))
        self.addCleanup(pipe.close)
        if 'log://' in pipe.notifiers:
            pipe.notifiers['log://'] = self.recorder
        inspector = engine.Inspector(self.conf, pipe, self.topology,
                                     self.timeline)
        transformer = plugins.load_driver(plugins.TRANSFORMERS_NAMESPACE,
                                          'doctor', self.conf)
        return api.InspectorAPI(self.conf, inspector, transformer, {
            path: (method, plugins.load_driver(
                plugins.TRANSFORMERS_NAMESPACE, name, self.conf))
            for path, method, name in routes or ()})


class TestInspectorAPI(APITestCase):

    def setUp(self):
        super().setUp()
        self.app = self.make_app()

    def request(self, path='/events', method='PUT', body=None,
                content_type='application/json'):
        req = webob.Request.blank(path, method=method, headers=self.auth)
        if body is not None:
            req.body = (body if isinstance(body, bytes)
                        else json.dumps(body).encode())
            req.content_type = content_type
        return req.get_response(self.app)

    def assertError(self, response, status, fragment):
        self.assertEqual(status, response.status_code)
        self.assertEqual('application/json', response.content_type)
        error = response.json['error']
        self.assertEqual(status, error['code'])
        self.assertEqual(webob.exc.status_map[status].title, error['title'])
        self.assertIn(fragment, error['message'])
        return error

    def test_put_events_publishes_fan_out(self):
        response = self.request(body=doctor_body())
        self.assertEqual(200, response.status_code)
        expected_id = host_events.detection_id('monitor_sample',
                                               'monitor_sample_event1',
                                               'compute-1', 'down')
        self.assertEqual({'events': [expected_id], 'published': 3},
                         response.json)
        (batch,) = self.recorder.batches
        self.assertEqual(expected_id, batch[0].message_id)
        self.assertEqual(['compute.host.down'] * 3,
                         [e.event_type for e in batch])
        self.assertEqual([None, 'tenant-a', 'tenant-b'],
                         [e.trait('project_id') for e in batch])

    def test_trailing_slash_and_charset_accepted(self):
        response = self.request(path='/events/', body=doctor_body(),
                                content_type='application/json; '
                                             'charset=utf-8')
        self.assertEqual(200, response.status_code)

    def test_repeated_report_is_accepted_but_not_republished(self):
        self.request(body=doctor_body())
        response = self.request(body=doctor_body())
        self.assertEqual(200, response.status_code)
        self.assertEqual(0, response.json['published'])
        self.assertEqual(1, len(self.recorder.batches))

    def test_invalid_json(self):
        response = self.request(body=b'[{"id": ')
        self.assertError(response, 400, 'body is not valid JSON')
        self.assertNotIn('field', response.json['error'])
        self.assertEqual([], self.recorder.batches)

    def test_empty_body(self):
        self.assertError(self.request(), 400, 'body is not valid JSON')

    def test_invalid_field(self):
        body = doctor_body()
        body[0]['details']['status'] = 'sideways'
        response = self.request(body=body)
        error = self.assertError(response, 400, "'sideways'")
        self.assertEqual('0.details.status', error['field'])
        self.assertEqual([], self.recorder.batches)

    def test_one_bad_element_rejects_the_whole_body(self):
        body = doctor_body() + doctor_body(host='compute-2')
        del body[1]['time']
        error = self.assertError(self.request(body=body), 400, 'required')
        self.assertEqual('1.time', error['field'])
        self.assertEqual([], self.recorder.batches)

    def test_wrong_method_on_events(self):
        for method in ('GET', 'POST', 'DELETE'):
            response = self.request(method=method)
            self.assertError(response, 405, f'{method} is not allowed')
            self.assertEqual('PUT', response.headers['Allow'])

    def test_wrong_method_on_healthz(self):
        response = self.request(path='/healthz', method='POST')
        self.assertError(response, 405, 'use GET')
        self.assertEqual('GET, HEAD', response.headers['Allow'])

    def test_unknown_path(self):
        response = self.request(path='/v1/events', method='PUT',
                                body=doctor_body())
        self.assertError(response, 404, 'no such resource /v1/events')
        self.assertEqual([], self.recorder.batches)

    def test_too_large_by_content_length(self):
        self.set_opts(group='inspector', max_request_body_size=1024)
        response = self.request(body=b' ' * 1025)
        self.assertError(response, 413,
                         'request body of 1025 bytes exceeds the limit of '
                         '1024 bytes')

    def test_too_large_without_content_length(self):
        self.set_opts(group='inspector', max_request_body_size=1024)
        req = webob.Request.blank('/events', method='PUT',
                                  content_type='application/json',
                                  headers=self.auth)
        req.environ.pop('CONTENT_LENGTH', None)
        req.environ['HTTP_TRANSFER_ENCODING'] = 'chunked'
        req.environ['wsgi.input_terminated'] = True
        req.environ['wsgi.input'] = io.BytesIO(b' ' * 5000)
        self.assertError(req.get_response(self.app), 413,
                         'exceeds the limit of 1024 bytes')

    def test_at_the_limit_is_accepted(self):
        self.set_opts(group='inspector', max_request_body_size=1024)
        data = json.dumps(doctor_body()).encode()
        data += b' ' * (1024 - len(data))
        self.assertEqual(200, self.request(body=data).status_code)

    def test_wrong_content_type(self):
        response = self.request(body=json.dumps(doctor_body()).encode(),
                                content_type='text/plain')
        self.assertError(response, 415, 'Content-Type text/plain')
        self.assertEqual([], self.recorder.batches)

    def test_missing_content_type_is_read_as_json(self):
        req = webob.Request.blank('/events', method='PUT',
                                  body=json.dumps(doctor_body()).encode(),
                                  headers=self.auth)
        self.assertEqual('', req.content_type)
        self.assertEqual(200, req.get_response(self.app).status_code)

    def test_healthz(self):
        response = self.request(path='/healthz', method='GET')
        self.assertEqual(200, response.status_code)
        self.assertEqual({'status': 'ok'}, response.json)
        self.assertEqual(200, self.request(path='/healthz',
                                           method='HEAD').status_code)


class TestPublishFailure(APITestCase):

    def test_publish_failure_is_503_and_retry_succeeds(self):
        # Without the outbox; with it the delivery is retried instead
        # (tests/unit/delivery).
        self.set_opts(group='delivery', durable=False)
        port = closed_port()
        app = self.make_app(urls=[f'http://127.0.0.1:{port}/alarm'])
        req = webob.Request.blank('/events', method='PUT',
                                  body=json.dumps(doctor_body()).encode(),
                                  content_type='application/json',
                                  headers=self.auth)
        response = req.get_response(app)
        self.assertEqual(503, response.status_code)
        error = response.json['error']
        self.assertEqual(503, error['code'])
        self.assertIn(f'127.0.0.1:{port}/alarm', error['message'])
        self.assertIn('retry the request', error['message'])

        with consumer.ConsumerServer(port=port) as receiver:
            req = webob.Request.blank(
                '/events', method='PUT',
                body=json.dumps(doctor_body()).encode(),
                content_type='application/json', headers=self.auth)
            self.assertEqual(200, req.get_response(app).status_code)
            self.assertEqual(3, len(receiver.wait_for(3, timeout=2)))


class TestAPIServer(APITestCase):

    def test_put_events_over_http(self):
        receiver = consumer.ConsumerServer().start()
        self.addCleanup(receiver.stop)
        app = self.make_app(urls=[f'{receiver.url}/vnfm'])
        server = api.APIServer(app, '127.0.0.1', 0).start()
        self.addCleanup(server.stop)
        self.assertTrue(server.url.startswith('http://127.0.0.1:'))
        self.assertNotEqual('http://127.0.0.1:0', server.url)

        response = requests.put(f'{server.url}/events', json=doctor_body(),
                                headers=self.auth, timeout=2)

        self.assertEqual(200, response.status_code)
        self.assertEqual(3, response.json()['published'])
        received = receiver.wait_for(3, timeout=2)
        # The webhook posts a batch's events one after the other.
        self.assertEqual([None, 'tenant-a', 'tenant-b'],
                         [a.trait('project_id') for a in received])
        self.assertEqual({'compute-1'}, {a.trait('host') for a in received})

        response = requests.put(f'{server.url}/events', data=b'{',
                                headers={'Content-Type':
                                         'application/json', **self.auth},
                                timeout=2)
        self.assertEqual(400, response.status_code)
        self.assertEqual('Bad Request', response.json()['error']['title'])

        response = requests.get(f'{server.url}/healthz', timeout=2)
        self.assertEqual({'status': 'ok'}, response.json())
