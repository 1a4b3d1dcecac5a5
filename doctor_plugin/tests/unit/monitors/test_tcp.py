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

"""Tests of the TCP monitor against real listening sockets on loopback."""

from __future__ import annotations

import errno
import os
import queue
import selectors
import socket
import threading
import time
import typing

from doctor_plugin.common import plugins
from doctor_plugin import exceptions
from doctor_plugin.monitors import base
from doctor_plugin.monitors import tcp
from doctor_plugin.tests import base as test_base

INTERVAL = 0.02
MISS_COUNT = 2
#: Allowance for scheduling and a loaded test machine.
SLACK = 0.3
DETECTION = INTERVAL * (MISS_COUNT + 1) + SLACK


class Listener:
    """A host's management port: accepts and drops connections.

    :param backlog: accept queue length; with ``accept=False`` and a
        backlog of 0 the port stops answering once one connection waits,
        like a hung host
    """

    def __init__(self, port: int = 0, host: str = '127.0.0.1',
                 family: int = socket.AF_INET, accept: bool = True,
                 backlog: int = 128) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.port: int = self.sock.getsockname()[1]
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(accept,),
                                        daemon=True)
        self._thread.start()

    def _serve(self, accept: bool) -> None:
        with selectors.DefaultSelector() as selector:
            if accept:
                self.sock.setblocking(False)
                selector.register(self.sock, selectors.EVENT_READ)
            while not self._closing.is_set():
                if not accept:
                    self._closing.wait(0.01)
                    continue
                for _key, _events in selector.select(0.01):
                    try:
                        conn, _addr = self.sock.accept()
                    except OSError:
                        continue
                    conn.close()
            if accept:
                selector.unregister(self.sock)
        self.sock.close()

    def close(self) -> None:
        """Stop listening; connections are refused from now on."""
        self._closing.set()
        self._thread.join(2)


free_port = test_base.closed_port


wait_until = test_base.wait_until


class TCPMonitorTest(test_base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.set_opts('monitor', interval=INTERVAL, miss_count=MISS_COUNT,
                      startup_grace=0.0)
        self.reports: queue.Queue[base.FaultReport] = queue.Queue()

    def listener(self, **kwargs: typing.Any) -> Listener:
        listener = Listener(**kwargs)
        self.addCleanup(listener.close)
        return listener

    def start(self, hosts: dict[str, tuple[str, int]],
              reporter: base.Reporter | None = None,
              ) -> tuple[tcp.TCPMonitor, threading.Event, threading.Thread]:
        monitor = tcp.TCPMonitor(self.conf, reporter or self.reports.put,
                                 hosts=hosts, timeline=self.timeline)
        stop = threading.Event()
        thread = threading.Thread(target=monitor.run, args=(stop,),
                                  daemon=True)
        thread.start()
        self.addCleanup(thread.join, 2)
        self.addCleanup(stop.set)
        return monitor, stop, thread

    def start_up_host(self) -> tuple[tcp.TCPMonitor, Listener]:
        listener = self.listener()
        monitor, _stop, _thread = self.start(
            {'compute-1': ('127.0.0.1', listener.port)})
        host = monitor.hosts['compute-1']
        self.assertTrue(wait_until(lambda: host.state == 'up'))
        return monitor, listener

    def assertNoReport(self, seconds: float) -> None:
        try:
            report = self.reports.get(timeout=seconds)
        except queue.Empty:
            return
        self.fail(f'unexpected report {report}')

    def test_up_host_is_not_reported(self) -> None:
        self.start_up_host()

        self.assertNoReport(INTERVAL * 10)

    def test_down_reported_within_detection_time(self) -> None:
        monitor, listener = self.start_up_host()

        t00 = time.time()
        listener.close()
        report = self.reports.get(timeout=DETECTION)
        received = time.time()

        self.assertEqual(('compute-1', 'down', 'tcp'),
                         (report.hostname, report.status, report.monitor))
        self.assertGreaterEqual(report.detected_at, t00)
        self.assertLessEqual(received - t00, DETECTION)
        marks = self.timeline.marks(report.monitor_event_id)
        self.assertEqual(report.detected_at, marks['T01'])
        # T00: the last probe the host answered, before the fault.
        self.assertLessEqual(marks['T00'], t00)
        self.assertEqual(os.strerror(errno.ECONNREFUSED),
                         monitor.hosts['compute-1'].last_error)

    def test_answers_that_came_while_held_up_are_not_misses(self) -> None:
        # The round's deadline is already past when it starts, as when the
        # monitor was held up by a loaded CPU: the connects the kernel
        # completed meanwhile still count.
        listener = self.listener()
        monitor = tcp.TCPMonitor(self.conf, self.reports.put,
                                 hosts={'compute-1': ('127.0.0.1',
                                                      listener.port)},
                                 timeline=self.timeline)
        with selectors.DefaultSelector() as selector:
            for _ in range(5):
                monitor._probe_round(selector, time.monotonic() - 1.0)
        host = monitor.hosts['compute-1']
        self.assertEqual(0, host.misses)
        self.assertEqual('up', host.state)

    def test_up_reported_when_host_answers_again(self) -> None:
        _monitor, listener = self.start_up_host()
        listener.close()
        self.assertEqual('down', self.reports.get(timeout=DETECTION).status)

        t_up = time.time()
        self.listener(port=listener.port)
        report = self.reports.get(timeout=INTERVAL + SLACK)

        self.assertEqual(('compute-1', 'up'), (report.hostname,
                                               report.status))
        self.assertGreaterEqual(report.detected_at, t_up)
        self.assertIn('T01', self.timeline.marks(report.monitor_event_id))
        self.assertNoReport(INTERVAL * 10)

    def test_down_reported_once(self) -> None:
        monitor, listener = self.start_up_host()
        listener.close()
        self.assertEqual('down', self.reports.get(timeout=DETECTION).status)

        self.assertNoReport(INTERVAL * 10)
        self.assertGreater(monitor.hosts['compute-1'].misses, MISS_COUNT + 5)

    def test_down_needs_miss_count_consecutive_misses(self) -> None:
        self.set_opts('monitor', miss_count=5)
        started = time.time()
        self.start({'compute-1': ('127.0.0.1', free_port())})

        report = self.reports.get(timeout=INTERVAL * 5 + SLACK)

        # The fifth probe is sent four intervals after the first.
        self.assertGreaterEqual(report.detected_at - started,
                                INTERVAL * 4 - 0.005)

    def test_unanswered_connect_is_a_miss(self) -> None:
        # A full accept queue that is never served drops new connections:
        # probes time out as they do to a hung or cut-off host.
        listener = self.listener(accept=False, backlog=0)
        monitor, _stop, _thread = self.start(
            {'compute-1': ('127.0.0.1', listener.port)})

        report = self.reports.get(timeout=DETECTION + INTERVAL)

        self.assertEqual('down', report.status)
        self.assertEqual(os.strerror(errno.ETIMEDOUT),
                         monitor.hosts['compute-1'].last_error)

    def test_no_down_report_during_startup_grace(self) -> None:
        self.set_opts('monitor', startup_grace=0.3)
        started = time.time()
        self.start({'compute-1': ('127.0.0.1', free_port())})

        report = self.reports.get(timeout=0.3 + DETECTION)

        self.assertEqual('down', report.status)
        self.assertGreaterEqual(report.detected_at - started, 0.3)

    def test_host_recovering_during_grace_is_not_reported(self) -> None:
        self.set_opts('monitor', startup_grace=0.4)
        port = free_port()
        monitor, _stop, _thread = self.start({'compute-1': ('127.0.0.1',
                                                            port)})
        host = monitor.hosts['compute-1']
        self.assertTrue(wait_until(lambda: host.misses > MISS_COUNT))

        self.listener(port=port)

        self.assertNoReport(0.6)
        self.assertEqual('up', host.state)

    def test_default_startup_grace(self) -> None:
        self.conf.clear_override('startup_grace', group='monitor')
        monitor = tcp.TCPMonitor(self.conf, self.reports.put,
                                 hosts={'c': ('127.0.0.1', 22)})
        self.assertEqual(1.0, monitor.startup_grace)

        self.set_opts('monitor', interval=1.0, miss_count=3)
        self.conf.clear_override('startup_grace', group='monitor')
        monitor = tcp.TCPMonitor(self.conf, self.reports.put,
                                 hosts={'c': ('127.0.0.1', 22)})
        self.assertEqual(6.0, monitor.startup_grace)

    def test_hundreds_of_hosts_in_one_thread(self) -> None:
        self.set_opts('monitor', interval=0.05)
        port = free_port()
        hosts = {f'compute-{i}': ('127.0.0.1', port) for i in range(300)}
        threads_before = threading.active_count()
        self.start(hosts)

        reported = set()
        deadline = time.monotonic() + 0.05 * (MISS_COUNT + 1) + 1.0
        while len(reported) < len(hosts):
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, f'{len(reported)} reported')
            report = self.reports.get(timeout=left)
            self.assertEqual('down', report.status)
            reported.add(report.hostname)

        # The probe loop and the reporter thread, not one per host.
        self.assertLessEqual(threading.active_count(), threads_before + 2)
        self.assertNoReport(0.1)

    def test_slow_reporter_does_not_delay_probes(self) -> None:
        release = threading.Event()
        self.addCleanup(release.set)

        def slow_reporter(report: base.FaultReport) -> None:
            if report.hostname == 'compute-1':
                release.wait(2)
            self.reports.put(report)

        first, second = self.listener(), self.listener()
        monitor, _stop, _thread = self.start(
            {'compute-1': ('127.0.0.1', first.port),
             'compute-2': ('127.0.0.1', second.port)}, slow_reporter)
        self.assertTrue(wait_until(lambda: all(
            h.state == 'up' for h in monitor.hosts.values())))
        first.close()
        self.assertTrue(wait_until(
            lambda: monitor.hosts['compute-1'].state == 'down'))

        t00 = time.time()
        second.close()
        self.assertTrue(wait_until(
            lambda: monitor.hosts['compute-2'].state == 'down', DETECTION))
        release.set()
        reports = {r.hostname: r for r in (self.reports.get(timeout=1),
                                           self.reports.get(timeout=1))}

        # compute-2 was detected while the reporter was stuck on compute-1.
        self.assertLessEqual(reports['compute-2'].detected_at - t00,
                             DETECTION)
        self.assertEqual(['compute-1', 'compute-2'],
                         sorted(reports))

    def test_reporter_failure_does_not_stop_monitor(self) -> None:
        calls = []

        def failing_reporter(report: base.FaultReport) -> None:
            calls.append(report)
            if len(calls) == 1:
                raise exceptions.DeliveryError('inspector unreachable')
            self.reports.put(report)

        listener = self.listener()
        monitor, _stop, _thread = self.start(
            {'compute-1': ('127.0.0.1', listener.port)}, failing_reporter)
        self.assertTrue(wait_until(
            lambda: monitor.hosts['compute-1'].state == 'up'))
        listener.close()
        self.assertTrue(wait_until(lambda: len(calls) == 1, DETECTION))

        self.listener(port=listener.port)

        self.assertEqual('up', self.reports.get(timeout=DETECTION).status)

    def test_stop_returns_within_interval(self) -> None:
        self.set_opts('monitor', interval=0.2)
        listener = self.listener()
        monitor, stop, thread = self.start(
            {'compute-1': ('127.0.0.1', listener.port),
             'compute-2': ('127.0.0.1', free_port())})
        time.sleep(0.3)

        stop.set()
        thread.join(0.2 + 0.1)

        self.assertFalse(thread.is_alive())

    def test_ipv6_loopback(self) -> None:
        try:
            listener = self.listener(host='::1', family=socket.AF_INET6)
        except OSError as exc:
            self.skipTest(f'no IPv6 loopback: {exc}')
        self.set_opts('monitor', hosts=[f'compute-6=[::1]:{listener.port}'])
        monitor = tcp.TCPMonitor(self.conf, self.reports.put,
                                 timeline=self.timeline)
        stop = threading.Event()
        thread = threading.Thread(target=monitor.run, args=(stop,))
        thread.start()
        self.addCleanup(thread.join, 2)
        self.addCleanup(stop.set)
        host = monitor.hosts['compute-6']
        self.assertEqual(socket.AF_INET6, host.family)
        self.assertTrue(wait_until(lambda: host.state == 'up'))

        listener.close()

        report = self.reports.get(timeout=DETECTION)
        self.assertEqual(('compute-6', 'down'),
                         (report.hostname, report.status))


class WatchedHostTest(test_base.TestCase):

    def host(self) -> tcp.WatchedHost:
        return tcp.WatchedHost('compute-1', '192.0.2.11', 22,
                               socket.AF_INET, ('192.0.2.11', 22))

    def test_first_success_is_not_reported(self) -> None:
        host = self.host()
        self.assertIsNone(host.observe(True, 2, True))
        self.assertEqual('up', host.state)

    def test_down_after_miss_count_then_up_once(self) -> None:
        host = self.host()
        host.observe(True, 3, True)
        self.assertEqual([None, None, 'down', None, None, 'up', None],
                         [host.observe(ok, 3, True) for ok in
                          (False, False, False, False, False, True, True)])

    def test_success_resets_misses(self) -> None:
        host = self.host()
        self.assertEqual([None, None, None, None, None, 'down'],
                         [host.observe(ok, 2, True) for ok in
                          (False, True, False, True, False, False)])

    def test_down_held_back_while_not_allowed(self) -> None:
        host = self.host()
        self.assertEqual([None, None, None, 'down'],
                         [host.observe(False, 2, allowed) for allowed in
                          (False, False, False, True)])


class TCPMonitorConfigTest(test_base.TestCase):

    def monitor(self, entries: list[str]) -> tcp.TCPMonitor:
        self.set_opts('monitor', hosts=entries)
        return tcp.TCPMonitor(self.conf, lambda report: None)

    def test_option_defaults(self) -> None:
        self.assertEqual([], self.conf.monitor.hosts)
        self.assertEqual(0.1, self.conf.monitor.interval)
        self.assertEqual(2, self.conf.monitor.miss_count)
        self.assertIsNone(self.conf.monitor.startup_grace)

    def test_parse_host(self) -> None:
        self.assertEqual(('compute-1', '192.0.2.11', 22),
                         tcp.parse_host('compute-1=192.0.2.11:22'))
        self.assertEqual(('compute-1', '::1', 22),
                         tcp.parse_host('compute-1=[::1]:22'))
        self.assertEqual(('c2', '2001:db8::12', 2222),
                         tcp.parse_host(' c2 = [2001:db8::12]:2222 '))
        self.assertEqual(('c3', 'mgmt.example.org', 22),
                         tcp.parse_host('c3=mgmt.example.org:22'))

    def test_hosts_from_config(self) -> None:
        monitor = self.monitor(['compute-1=192.0.2.11:22',
                                'compute-2=[::1]:2222'])

        one, two = monitor.hosts['compute-1'], monitor.hosts['compute-2']
        self.assertEqual((socket.AF_INET, ('192.0.2.11', 22)),
                         (one.family, one.sockaddr))
        self.assertEqual(socket.AF_INET6, two.family)
        self.assertEqual(('::1', 2222), two.sockaddr[:2])
        self.assertEqual('[::1]:2222', two.target)
        self.assertEqual('192.0.2.11:22', one.target)

    def test_malformed_entries(self) -> None:
        for entry, problem in [
                ('compute-1', 'expected hostname=address:port'),
                ('=192.0.2.11:22', 'expected hostname=address:port'),
                ('compute-1=', 'expected hostname=address:port'),
                ('compute-1=192.0.2.11', 'no port given'),
                ('compute-1=192.0.2.11:ssh', "port 'ssh' is not a number"),
                ('compute-1=192.0.2.11:0', 'not between 1 and 65535'),
                ('compute-1=192.0.2.11:65536', 'not between 1 and 65535'),
                ('compute-1=::1:22', 'put the IPv6 address in brackets'),
                ('compute-1=[::1', 'expected hostname=address:port'),
                ('compute-1=[::1]22', 'expected hostname=address:port'),
                ('compute-1=[192.0.2.11]:22', 'is not an IPv6 address'),
                ('compute 1=192.0.2.11:22', 'contains whitespace')]:
            exc = self.assertRaises(exceptions.ConfigurationError,
                                    self.monitor, [entry])
            self.assertEqual('[monitor] hosts', exc.source)
            self.assertEqual(entry, exc.entry)
            self.assertIn(problem, exc.problem)
            self.assertIn('hostname=address:port', exc.problem)

    def test_duplicate_host(self) -> None:
        exc = self.assertRaises(exceptions.ConfigurationError, self.monitor,
                                ['compute-1=192.0.2.11:22',
                                 'compute-1=192.0.2.12:22'])
        self.assertIn('listed more than once', str(exc))

    def test_no_hosts(self) -> None:
        exc = self.assertRaises(exceptions.ConfigurationError,
                                self.monitor, [])
        self.assertIn('[monitor] hosts', str(exc))
        self.assertIn('no hosts to watch', str(exc))

    def test_hosts_argument_replaces_config(self) -> None:
        self.set_opts('monitor', hosts=['compute-1=192.0.2.11:22'])

        monitor = tcp.TCPMonitor(self.conf, lambda report: None,
                                 hosts={'demo-host': ('::1', 22),
                                        'other': ('[::1]', 23)})

        self.assertEqual(['demo-host', 'other'], sorted(monitor.hosts))
        self.assertEqual(('::1', 23), monitor.hosts['other'].sockaddr[:2])

    def test_hosts_argument_bad_port(self) -> None:
        self.assertRaises(exceptions.ConfigurationError, tcp.TCPMonitor,
                          self.conf, lambda report: None,
                          hosts={'demo-host': ('127.0.0.1', 0)})

    def test_loaded_as_plugin(self) -> None:
        self.set_opts('monitor', hosts=['compute-1=127.0.0.1:22'])

        monitor = plugins.load_driver(plugins.MONITORS_NAMESPACE, 'tcp',
                                      self.conf, lambda report: None)

        self.assertIsInstance(monitor, tcp.TCPMonitor)
        self.assertEqual(['compute-1'], list(monitor.hosts))

    def test_plugin_config_error_is_not_wrapped(self) -> None:
        self.set_opts('monitor', hosts=['compute-1'])

        self.assertRaises(exceptions.ConfigurationError, plugins.load_driver,
                          plugins.MONITORS_NAMESPACE, 'tcp', self.conf,
                          lambda report: None)
