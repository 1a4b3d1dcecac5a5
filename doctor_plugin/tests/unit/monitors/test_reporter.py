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

"""Tests of the inspector reporter against a real local HTTP server."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import fixtures

from doctor_plugin import exceptions
from doctor_plugin.monitors import base
from doctor_plugin.monitors import reporter
from doctor_plugin.tests import base as test_base


class _InspectorHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server: FakeInspector

    def do_PUT(self) -> None:
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length)
        answer = self.server.next_answer()
        status, reply, delay = answer[:3]
        self.server.record(self, body)
        if delay:
            time.sleep(delay)
        data = json.dumps(reply).encode()
        self.send_response(status)
        for name, value in (answer[3] if len(answer) > 3 else {}).items():
            self.send_header(name, value)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class FakeInspector(http.server.ThreadingHTTPServer):
    """Doctor's ``PUT /events`` on 127.0.0.1, answering as scripted."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(('127.0.0.1', 0), _InspectorHandler)
        self.requests: list[dict] = []
        self.answers: list[tuple[int, dict, float]] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return 'http://127.0.0.1:%d/events' % self.server_address[1]

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that timed out has gone: writing its answer fails.
        pass

    def next_answer(self) -> tuple[int, dict, float]:
        with self._lock:
            if self.answers:
                return self.answers.pop(0)
        return 200, {}, 0.0

    def record(self, handler: _InspectorHandler, body: bytes) -> None:
        with self._lock:
            self.requests.append({
                'path': handler.path,
                'headers': dict(handler.headers),
                'body': json.loads(body),
                'client': handler.client_address,
            })


class InspectorReporterTest(test_base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        for name in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
            self.useFixture(fixtures.EnvironmentVariable(name))
        self.server = FakeInspector()
        thread = threading.Thread(target=self.server.serve_forever,
                                  kwargs={'poll_interval': 0.05},
                                  daemon=True)
        thread.start()
        self.addCleanup(thread.join, 2)
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.report = base.FaultReport('compute-1', 'down', monitor='tcp',
                                       detected_at=1700000000.25,
                                       monitor_event_id='event-1')

    def make_reporter(self, url: str | None = None,
                      **overrides: object) -> reporter.InspectorReporter:
        self.set_opts('monitor', inspector_url=url or self.server.url,
                      **overrides)
        rep = reporter.InspectorReporter(self.conf)
        self.addCleanup(rep.close)
        return rep

    def test_options_defaults(self) -> None:
        self.assertEqual('http://127.0.0.1:12345/events',
                         self.conf.monitor.inspector_url)
        self.assertEqual(2.0, self.conf.monitor.report_timeout)
        self.assertEqual(3, self.conf.monitor.report_retries)

    def test_settings_without_configuration(self) -> None:
        rep = reporter.InspectorReporter(settings=reporter.ReporterSettings(
            url=self.server.url, timeout=1.5, retries=0, secret='s3cret'))
        self.addCleanup(rep.close)
        self.assertEqual((1.5, 0), (rep.timeout, rep.retries))
        rep(self.report)
        self.assertEqual(1, len(self.server.requests))
        self.assertEqual('s3cret',
                         self.server.requests[0]['headers']['X-Auth-Token'])

    def test_settings_default_to_the_options_defaults(self) -> None:
        self.conf.register_opts(reporter.OPTS, group='monitor')
        self.assertEqual(reporter.ReporterSettings.from_conf(self.conf),
                         reporter.ReporterSettings())

    def test_sends_doctor_event_body(self) -> None:
        self.make_reporter()(self.report)

        self.assertEqual(1, len(self.server.requests))
        request = self.server.requests[0]
        self.assertEqual('/events', request['path'])
        self.assertEqual('application/json',
                         request['headers']['Content-Type'])
        self.assertEqual('application/json', request['headers']['Accept'])
        self.assertEqual([{
            'id': 'event-1',
            'time': '2023-11-14T22:13:20.250000',
            'type': 'compute.host.down',
            'details': {
                'hostname': 'compute-1',
                'status': 'down',
                'monitor': 'tcp',
                'monitor_event_id': 'event-1',
            },
        }], request['body'])

    def test_keeps_connection_alive(self) -> None:
        rep = self.make_reporter()
        rep(self.report)
        rep(base.FaultReport('compute-1', 'up', monitor='tcp',
                             detected_at=1700000001.0))

        self.assertEqual(2, len(self.server.requests))
        self.assertEqual(self.server.requests[0]['client'],
                         self.server.requests[1]['client'])
        self.assertEqual('up',
                         self.server.requests[1]['body'][0]['details'][
                             'status'])

    def test_client_error_raises_with_inspector_error(self) -> None:
        self.server.answers.append(
            (400, {'error': '0.details.status: must be down or up'}, 0.0))
        rep = self.make_reporter()

        exc = self.assertRaises(exceptions.DeliveryError, rep, self.report)

        self.assertIn('HTTP 400', str(exc))
        self.assertIn('0.details.status: must be down or up', str(exc))
        self.assertIn(self.server.url, str(exc))
        # A rejected report is not sent again.
        self.assertEqual(1, len(self.server.requests))

    def test_client_error_is_logged(self) -> None:
        logger = self.useFixture(fixtures.FakeLogger(
            name='doctor_plugin.monitors.reporter'))
        self.server.answers.append((422, {'error': 'unknown host'}, 0.0))

        self.assertRaises(exceptions.DeliveryError, self.make_reporter(),
                          self.report)

        self.assertIn('rejected the report of host compute-1 down',
                      logger.output)
        self.assertIn('{"error": "unknown host"}', logger.output)

    def test_server_error_is_retried(self) -> None:
        self.server.answers.extend([(503, {'error': 'busy'}, 0.0),
                                    (503, {'error': 'busy'}, 0.0)])
        rep = self.make_reporter()

        rep(self.report)

        self.assertEqual(3, len(self.server.requests))
        bodies = [r['body'] for r in self.server.requests]
        self.assertEqual([bodies[0]] * 3, bodies)

    def test_rate_limited_report_is_retried_after_retry_after(self) -> None:
        self.server.answers.append(
            (429, {'error': 'too many requests'}, 0.0,
             {'Retry-After': '0.3'}))
        rep = self.make_reporter()
        started = time.monotonic()

        rep(self.report)

        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertEqual(2, len(self.server.requests))

    def test_server_error_exhausts_retries(self) -> None:
        self.server.answers.extend([(500, {'error': 'boom'}, 0.0)] * 3)
        rep = self.make_reporter(report_retries=2)

        exc = self.assertRaises(exceptions.DeliveryError, rep, self.report)

        self.assertEqual(3, len(self.server.requests))
        self.assertIn('after 3 attempt(s)', str(exc))
        self.assertIn('HTTP 500: {"error": "boom"}', str(exc))

    def test_timeout_is_retried(self) -> None:
        self.server.answers.append((200, {}, 0.5))
        rep = self.make_reporter(report_timeout=0.1, report_retries=1)

        rep(self.report)

        self.assertEqual(2, len(self.server.requests))

    def test_closed_port_raises_after_retries(self) -> None:
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        url = 'http://127.0.0.1:%d/events' % port
        logger = self.useFixture(fixtures.FakeLogger(
            name='doctor_plugin.monitors.reporter'))
        rep = self.make_reporter(url=url)

        started = time.monotonic()
        exc = self.assertRaises(exceptions.DeliveryError, rep, self.report)

        self.assertLess(time.monotonic() - started, 2.0)
        message = str(exc)
        self.assertIn(url, message)
        self.assertIn('after 4 attempt(s)', message)
        self.assertIn('doctor-plugin-inspector is running', message)
        self.assertIn('[monitor] inspector_url', message)
        self.assertEqual(4, logger.output.count('Attempt '))
