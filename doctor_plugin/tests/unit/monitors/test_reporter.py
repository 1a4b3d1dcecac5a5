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
import threading
import time

import fixtures

from doctor_plugin.cmd import monitor as cmd_monitor
from doctor_plugin.common import retry
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


class ReporterTestCase(test_base.TestCase):
    """A fake inspector on loopback, and reporters to it."""

    def setUp(self) -> None:
        super().setUp()
        for name in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
            self.useFixture(fixtures.EnvironmentVariable(name))
        self.server = self.start_inspector()
        self.report = base.FaultReport('compute-1', 'down', monitor='tcp',
                                       detected_at=1700000000.25,
                                       monitor_event_id='event-1')

    def start_inspector(self) -> FakeInspector:
        """Another fake inspector on loopback, stopped after the test."""
        server = FakeInspector()
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={'poll_interval': 0.05},
                                  daemon=True)
        thread.start()
        self.addCleanup(thread.join, 2)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server

    def make_reporter(self, url: str | None = None,
                      **overrides: object) -> reporter.InspectorReporter:
        self.set_opts('monitor', inspector_url=url or self.server.url,
                      **overrides)
        rep = reporter.InspectorReporter(self.conf)
        self.addCleanup(rep.close)
        return rep


class InspectorReporterTest(ReporterTestCase):

    def test_options_defaults(self) -> None:
        self.assertEqual(['http://127.0.0.1:12345/events'],
                         self.conf.monitor.inspector_url)
        self.assertEqual(2.0, self.conf.monitor.report_timeout)
        self.assertEqual(3, self.conf.monitor.report_retries)

    def test_settings_without_configuration(self) -> None:
        rep = reporter.InspectorReporter(settings=reporter.ReporterSettings(
            urls=(self.server.url,), timeout=1.5, retries=0,
            secret='s3cret'))
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
        url = 'http://127.0.0.1:%d/events' % test_base.closed_port()
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


def _closed_url() -> str:
    return 'http://127.0.0.1:%d/events' % test_base.closed_port()


class InspectorFailoverTest(ReporterTestCase):
    """``[monitor] inspector_url`` listing the members of a cluster."""

    def setUp(self) -> None:
        super().setUp()
        self.other = self.start_inspector()
        self.logger = self.useFixture(fixtures.FakeLogger(
            name='doctor_plugin.monitors.reporter'))

    def slow_backoff(self, seconds: float = 1.0) -> None:
        """Make the waits between attempts long enough to measure."""
        self.useFixture(fixtures.MonkeyPatch(
            'doctor_plugin.monitors.reporter.BACKOFF',
            retry.Backoff(seconds, seconds, jitter=False)))

    def test_list_option(self) -> None:
        rep = self.make_reporter(f'{self.server.url}, {self.other.url}')

        self.assertEqual((self.server.url, self.other.url), rep.urls)
        self.assertEqual(self.server.url, rep.url)

    def test_single_url_is_a_list_of_one(self) -> None:
        rep = self.make_reporter(self.server.url)

        rep(self.report)

        self.assertEqual((self.server.url,), rep.urls)
        self.assertEqual(1, len(self.server.requests))

    def test_refused_connection_fails_over_to_the_next(self) -> None:
        down = _closed_url()
        self.slow_backoff()
        rep = self.make_reporter(f'{down},{self.server.url}')
        started = time.monotonic()

        rep(self.report)

        # An inspector not tried yet is tried at once, without backoff.
        self.assertLess(time.monotonic() - started, 0.9)
        self.assertEqual(1, len(self.server.requests))
        self.assertEqual('event-1',
                         self.server.requests[0]['body'][0]['id'])
        self.assertIn(f'Attempt 1/4 to report host compute-1 down to '
                      f'{down} failed', self.logger.output)
        self.assertIn(f'trying {self.server.url} next', self.logger.output)
        self.assertIn(f'to {self.server.url} in', self.logger.output)

    def test_unavailable_inspector_fails_over_to_the_next(self) -> None:
        self.server.answers.append((503, {'error': 'no lease'}, 0.0))
        rep = self.make_reporter(f'{self.server.url},{self.other.url}')

        rep(self.report)

        self.assertEqual(1, len(self.server.requests))
        self.assertEqual(1, len(self.other.requests))
        self.assertEqual(self.server.requests[0]['body'],
                         self.other.requests[0]['body'])
        self.assertIn(f'to {self.server.url} failed: HTTP 503: '
                      f'{{"error": "no lease"}}; trying {self.other.url} '
                      f'next', self.logger.output)

    def test_rate_limited_fails_over_without_retry_after(self) -> None:
        self.server.answers.append(
            (429, {'error': 'too many requests'}, 0.0,
             {'Retry-After': '1'}))
        rep = self.make_reporter(f'{self.server.url},{self.other.url}')
        started = time.monotonic()

        rep(self.report)

        self.assertLess(time.monotonic() - started, 0.9)
        self.assertEqual(1, len(self.other.requests))

    def test_timeout_fails_over_to_the_next(self) -> None:
        self.server.answers.append((200, {}, 0.5))
        rep = self.make_reporter(f'{self.server.url},{self.other.url}',
                                 report_timeout=0.1)

        rep(self.report)

        self.assertEqual(1, len(self.other.requests))
        self.assertIn('no response within 0.1s', self.logger.output)

    def test_rejected_report_is_not_sent_elsewhere(self) -> None:
        self.server.answers.append(
            (400, {'error': '0.details.status: must be down or up'}, 0.0))
        rep = self.make_reporter(f'{self.server.url},{self.other.url}')

        exc = self.assertRaises(exceptions.DeliveryError, rep, self.report)

        self.assertIn(f'the inspector at {self.server.url} rejected',
                      str(exc))
        self.assertIn('HTTP 400', str(exc))
        self.assertEqual(1, len(self.server.requests))
        self.assertEqual([], self.other.requests)
        # Nor does it move the next report away from the first.
        self.assertEqual(self.server.url, rep.url)

    def test_bad_token_is_not_sent_elsewhere(self) -> None:
        self.server.answers.append((401, {'error': 'bad token'}, 0.0))
        rep = self.make_reporter(f'{self.server.url},{self.other.url}')

        self.assertRaises(exceptions.DeliveryError, rep, self.report)

        self.assertEqual([], self.other.requests)

    def test_sticks_to_the_inspector_that_took_the_last_report(self) -> None:
        self.server.answers.append((503, {'error': 'no lease'}, 0.0))
        rep = self.make_reporter(f'{self.server.url},{self.other.url}')

        rep(self.report)
        rep(base.FaultReport('compute-1', 'up', monitor='tcp',
                             detected_at=1700000001.0))
        rep(base.FaultReport('compute-2', 'down', monitor='tcp',
                             detected_at=1700000002.0))

        self.assertEqual(self.other.url, rep.url)
        # The first inspector had the first attempt of the first report
        # only; the second took every report on one kept-alive connection.
        self.assertEqual(1, len(self.server.requests))
        self.assertEqual(3, len(self.other.requests))
        self.assertEqual(1, len({r['client'] for r in self.other.requests}))
        self.assertEqual(1, self.logger.output.count('Attempt '))

    def test_moves_on_when_the_sticky_inspector_fails(self) -> None:
        rep = self.make_reporter(f'{self.server.url},{self.other.url}')
        self.server.answers.append((503, {'error': 'no lease'}, 0.0))
        rep(self.report)
        self.other.answers.append((503, {'error': 'no lease'}, 0.0))

        rep(self.report)

        # Around the list again: back to the first.
        self.assertEqual(self.server.url, rep.url)
        self.assertEqual(2, len(self.server.requests))
        self.assertEqual(2, len(self.other.requests))

    def test_all_down_raises_after_retries(self) -> None:
        first, second = _closed_url(), _closed_url()
        rep = self.make_reporter(f'{first},{second}')

        exc = self.assertRaises(exceptions.DeliveryError, rep, self.report)

        message = str(exc)
        # The attempts are shared, not multiplied by the inspectors.
        self.assertIn('after 4 attempt(s)', message)
        self.assertIn(f'any of the inspectors at {first}, {second}',
                      message)
        self.assertIn('doctor-plugin-inspector is running', message)
        self.assertIn('[monitor] inspector_url', message)
        self.assertEqual(4, self.logger.output.count('Attempt '))
        self.assertEqual(2, self.logger.output.count(f'to {first} failed'))
        self.assertEqual(2, self.logger.output.count(f'to {second} failed'))

    def test_all_unavailable_raises_with_the_last_error(self) -> None:
        self.server.answers.extend([(503, {'error': 'no lease'}, 0.0)] * 2)
        self.other.answers.extend([(500, {'error': 'boom'}, 0.0)] * 2)
        rep = self.make_reporter(f'{self.server.url},{self.other.url}')

        exc = self.assertRaises(exceptions.DeliveryError, rep, self.report)

        self.assertEqual(2, len(self.server.requests))
        self.assertEqual(2, len(self.other.requests))
        self.assertIn('HTTP 500: {"error": "boom"}', str(exc))

    def test_every_inspector_is_tried_once_without_retries(self) -> None:
        rep = self.make_reporter(
            f'{_closed_url()},{_closed_url()},{self.server.url}',
            report_retries=0)

        rep(self.report)

        self.assertEqual(1, len(self.server.requests))
        self.assertEqual(2, self.logger.output.count('Attempt '))
        self.assertIn('Attempt 2/3', self.logger.output)

    def test_an_inspector_tried_already_gets_the_backoff(self) -> None:
        self.slow_backoff(0.3)
        self.server.answers.append((503, {'error': 'no lease'}, 0.0))
        self.other.answers.append((503, {'error': 'no lease'}, 0.0))
        rep = self.make_reporter(f'{self.server.url},{self.other.url}')
        started = time.monotonic()

        rep(self.report)

        # The second went at once; back to the first after a wait.
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertEqual(2, len(self.server.requests))
        self.assertEqual(1, len(self.other.requests))

    def test_explicit_url_is_not_failed_over(self) -> None:
        self.server.answers.extend([(503, {'error': 'no lease'}, 0.0)] * 2)
        rep = self.make_reporter(f'{self.other.url},{self.server.url}',
                                 report_retries=1)

        self.assertRaises(exceptions.DeliveryError, rep.send, [],
                          'a test', url=self.server.url)

        self.assertEqual(2, len(self.server.requests))
        self.assertEqual([], self.other.requests)
        self.assertEqual(self.other.url, rep.url)


class InspectorUrlValidationTest(test_base.TestCase):

    BAD = [
        ('ftp://ctl-1:12345/events', 'is not an http or https URL'),
        ('ctl-1:12345/events', 'is not an http or https URL'),
        ('http:///events', 'names no host'),
        ('https://:12345/events', 'names no host'),
        ('http://ctl-1:port/events', 'is not a valid URL'),
    ]

    def assertRefused(self, value: str, problem: str) -> None:
        self.set_opts('monitor', inspector_url=value)
        exc = self.assertRaises(exceptions.ConfigurationError,
                                reporter.InspectorReporter, self.conf)
        message = str(exc)
        self.assertTrue(message.startswith('[monitor]: inspector_url: '),
                        message)
        self.assertIn(problem, message)
        self.assertIn('write http://HOST:PORT/events', message)
        self.assertIn('separated by commas', message)

    def test_bad_urls_are_refused(self) -> None:
        for bad, problem in self.BAD:
            with self.subTest(url=bad):
                self.assertRefused(bad, f'{bad!r} {problem}')

    def test_one_bad_url_of_several_is_named(self) -> None:
        self.assertRefused('http://ctl-1:12345/events,ctl-2:12345/events',
                           "'ctl-2:12345/events' is not an http or https")

    def test_no_url_is_refused(self) -> None:
        self.assertRefused('', 'no inspector is set')

    def test_settings_are_checked(self) -> None:
        exc = self.assertRaises(exceptions.ConfigurationError,
                                reporter.ReporterSettings, urls=())
        self.assertIn('no inspector is set', str(exc))
        self.assertRaises(exceptions.ConfigurationError,
                          reporter.ReporterSettings,
                          urls=('gopher://ctl-1/events',))

    def test_good_urls_are_taken(self) -> None:
        self.set_opts('monitor', inspector_url=(
            'http://ctl-1:12345/events, https://[2001:db8::1]:12345/events,'
            'http://ctl-3/events'))
        rep = reporter.InspectorReporter(self.conf)
        self.addCleanup(rep.close)
        self.assertEqual(('http://ctl-1:12345/events',
                          'https://[2001:db8::1]:12345/events',
                          'http://ctl-3/events'), rep.urls)

    def test_monitor_command_says_what_to_fix(self) -> None:
        path = self.useFixture(fixtures.TempDir()).path + '/monitor.conf'
        with open(path, 'w') as f:
            f.write('[monitor]\ninspector_url = ctl-1:12345/events\n')
        stderr = self.useFixture(fixtures.StringStream('stderr'))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr.stream))

        self.assertEqual(cmd_monitor.EXIT_CONFIG_ERROR,
                         cmd_monitor.main(['--config-file', path]))

        output = stderr.getDetails()['stderr'].as_text()
        self.assertIn("[monitor]: inspector_url: 'ctl-1:12345/events' is "
                      "not an http or https URL", output)
