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

"""Tests for doctor_plugin.testing.childproc and the servers run through it.

The children are real interpreters (``python -m ...``) on loopback: the
consumer, the Nova stand-in, and a few tiny modules written for a test
into a temporary directory on ``PYTHONPATH``.
"""

import os
import signal
import textwrap
import time

import fixtures
import requests

from doctor_plugin.testing import childproc
from doctor_plugin.testing import consumer
from doctor_plugin.testing import nova as nova_standin
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.testing import test_consumer

#: Bound on every HTTP call and wait of these tests, in seconds.
TIMEOUT = 10

#: Small modules the children run, by module name.
CHILD_MODULES = {
    # Announces a JSON value that is not an object.
    'doctor_test_child_list': """
        print('[1, 2]', flush=True)
    """,
    # Announces something that is not JSON, then keeps running.
    'doctor_test_child_chatty': """
        import os, time
        print(f'pid {os.getpid()} is up', flush=True)
        time.sleep(60)
    """,
    # Announces itself, prints two more lines and exits.
    'doctor_test_child_lines': """
        import json, os
        # One write: the lines are all there before it can be stopped.
        lines = [{'pid': os.getpid()}, {'n': 1}, {'n': 2}]
        os.write(1, ''.join(json.dumps(x) + chr(10) for x in lines).encode())
    """,
    # Never announces itself.
    'doctor_test_child_silent': """
        import time
        time.sleep(60)
    """,
    # Announces itself, then ignores SIGTERM.
    'doctor_test_child_stubborn': """
        import json, os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(json.dumps({'pid': os.getpid()}), flush=True)
        time.sleep(60)
    """,
}


def process_gone(pid):
    """Whether no process (not even a zombie) has ``pid`` any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class ChildTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))

    def child(self, module, args=(), what='the test child'):
        server = childproc.ChildServer(module, args, what=what)
        self.addCleanup(server.stop, 1.0)
        return server


class TestChildServer(ChildTestCase):

    def setUp(self):
        super().setUp()
        path = self.useFixture(fixtures.TempDir()).path
        for name, source in CHILD_MODULES.items():
            with open(os.path.join(path, f'{name}.py'), 'w') as f:
                f.write(textwrap.dedent(source))
        self.useFixture(fixtures.EnvironmentVariable(
            'PYTHONPATH', os.pathsep.join(
                p for p in (path, os.environ.get('PYTHONPATH')) if p)))

    def test_start_returns_the_announced_json(self):
        server = self.child('doctor_plugin.testing.consumer')
        ready = server.start()
        self.assertEqual({'url'}, set(ready))
        self.assertEqual(ready, server.ready)
        self.assertTrue(ready['url'].startswith('http://127.0.0.1:'),
                        ready)
        self.assertIsNone(server.proc.poll())
        # The announced address is live: the consumer answers there.
        resp = requests.post(ready['url'] + '/', data='not json',
                             timeout=TIMEOUT)
        self.assertEqual(400, resp.status_code)

    def test_command_runs_the_module_with_its_arguments(self):
        server = childproc.ChildServer('some.module', ['--a', 'b'])
        self.assertEqual(['-m', 'doctor_plugin.cmd.child', 'some.module',
                          '--a', 'b'], server.command[1:])
        self.assertEqual('the child process', server.what)

    def test_the_child_runs_on_the_threading_backend(self):
        # A module outside doctor_plugin.tests (whose import would choose
        # the backend itself) that imports oslo.messaging, as the chain's
        # listener and the Nova stand-in do, and says what it got.
        directory = self.useFixture(fixtures.TempDir()).path
        with open(os.path.join(directory, 'doctor_backend_probe.py'),
                  'w') as f:
            f.write('import json, sys\n'
                    'import oslo_messaging  # noqa\n'
                    'from oslo_service import backend\n'
                    'print(json.dumps({"backend": '
                    'backend.get_backend_type().name, '
                    '"argv": sys.argv[1:]}), flush=True)\n'
                    'sys.stdin.read()\n')
        self.useFixture(fixtures.EnvironmentVariable(
            'PYTHONPATH', os.pathsep.join(
                [directory, os.environ.get('PYTHONPATH', '')])))
        server = childproc.ChildServer('doctor_backend_probe', ['x', '-y'])
        self.addCleanup(server.stop)
        ready = server.start(TIMEOUT)
        self.assertEqual({'backend': 'THREADING', 'argv': ['x', '-y']},
                         ready)

    def assertDidNotStart(self, server, printed, timeout=TIMEOUT):
        exc = self.assertRaises(RuntimeError, server.start, timeout)
        message = str(exc)
        self.assertIn(server.what, message)
        self.assertIn('did not start', message)
        if printed is not None:
            self.assertIn(repr(printed), message)
        # Nothing of a failed start is kept.
        self.assertEqual({}, server.ready)
        # The failed child is released: nothing left to stop.
        self.assertIsNone(server.proc)
        return message

    def test_module_printing_non_json_fails_naming_what(self):
        server = self.child('this', what='the Zen process')
        self.assertDidNotStart(server, 'The Zen of Python, by Tim Peters\n')

    def test_module_exiting_at_once_fails_naming_what(self):
        # A real module that defines things and exits, printing nothing.
        server = self.child('doctor_plugin.exceptions',
                            what='the silent process')
        message = self.assertDidNotStart(server, None)
        self.assertIn('doctor_plugin.exceptions', message)
        self.assertIn('exited with status 0', message)

    def test_module_saying_nothing_times_out(self):
        server = self.child('doctor_test_child_silent',
                            what='the mute process')
        started = time.monotonic()
        message = self.assertDidNotStart(server, None, timeout=0.5)
        self.assertIn('said nothing within 0.5 s', message)
        self.assertLess(time.monotonic() - started, 10)

    def test_json_that_is_not_an_object_fails(self):
        server = self.child('doctor_test_child_list', what='the list child')
        self.assertDidNotStart(server, '[1, 2]\n')

    def test_failed_start_stops_a_child_that_keeps_running(self):
        server = self.child('doctor_test_child_chatty',
                            what='the chatty child')
        exc = self.assertRaises(RuntimeError, server.start)
        self.assertIn('the chatty child', str(exc))
        pid = int(str(exc).split("printed 'pid ", 1)[1].split()[0])
        self.assertTrue(process_gone(pid), f'child {pid} still runs')

    def test_terminate_ends_the_child_and_keeps_its_output(self):
        server = self.child('doctor_test_child_lines')
        server.start()
        proc = server.proc
        server.terminate(timeout=TIMEOUT)
        self.assertIsNotNone(proc.poll())
        self.assertIs(proc, server.proc)
        # What it printed before it ended is still there.
        self.assertEqual([{'n': 1}, {'n': 2}], list(server.lines()))

    def test_terminate_kills_a_child_ignoring_sigterm(self):
        server = self.child('doctor_test_child_stubborn')
        pid = server.start()['pid']
        proc = server.proc
        started = time.monotonic()
        server.terminate(timeout=0.5)
        self.assertEqual(-signal.SIGKILL, proc.poll())
        self.assertLess(time.monotonic() - started, 5)
        server.stop()
        self.assertTrue(process_gone(pid))

    def test_stop_ends_a_running_child(self):
        server = self.child('doctor_plugin.testing.consumer')
        server.start()
        proc = server.proc
        self.assertIsNone(proc.poll())
        server.stop()
        # The consumer shuts down cleanly on SIGTERM.
        self.assertEqual(0, proc.poll())
        self.assertTrue(proc.stdout.closed)
        self.assertIsNone(server.proc)
        self.assertTrue(process_gone(proc.pid))

    def test_stop_twice_and_before_start_are_harmless(self):
        server = self.child('doctor_plugin.testing.consumer')
        server.stop()
        server.terminate()
        server.start()
        proc = server.proc
        server.stop()
        server.stop()
        server.terminate()
        self.assertIsNotNone(proc.poll())

    def test_stop_after_the_child_exited(self):
        server = self.child('doctor_test_child_lines')
        server.start()
        proc = server.proc
        proc.wait(TIMEOUT)
        server.stop()
        self.assertEqual(0, proc.returncode)


class TestConsumerProcess(ChildTestCase):

    def test_receives_an_alarm_end_to_end(self):
        seen = []
        process = consumer.ConsumerProcess(on_alarm=seen.append)
        self.addCleanup(process.stop)
        self.assertIs(process, process.start())
        self.assertTrue(process.url.startswith('http://127.0.0.1:'),
                        process.url)
        before = time.time()
        body = test_consumer.alarm_body()
        resp = requests.post(process.url + '/tenants/t1', json=body,
                             headers={'X-Doctor-Event-Id': 'm1'},
                             timeout=TIMEOUT)
        self.assertEqual(200, resp.status_code, resp.text)
        alarms = process.wait_for(1, TIMEOUT)
        self.assertEqual(1, len(alarms))
        (alarm,) = alarms
        self.assertIsInstance(alarm, consumer.ReceivedAlarm)
        self.assertEqual('/tenants/t1', alarm.path)
        self.assertEqual(body, alarm.body)
        self.assertEqual('m1', alarm.headers['X-Doctor-Event-Id'])
        self.assertTrue(before <= alarm.received_at <= time.time())
        self.assertEqual('compute-1', alarm.trait('host'))
        self.assertEqual([alarm], seen)

    def test_an_invalid_body_is_refused_and_not_recorded(self):
        process = consumer.ConsumerProcess().start()
        self.addCleanup(process.stop)
        body = test_consumer.alarm_body()
        del body['reason_data']
        resp = requests.post(process.url + '/tenants/t1', json=body,
                             timeout=TIMEOUT)
        self.assertEqual(400, resp.status_code)
        self.assertIn('reason_data', resp.json()['error'])
        self.assertEqual([], process.wait_for(1, 0.2))

    def test_stop_ends_the_process_and_its_reader(self):
        process = consumer.ConsumerProcess().start()
        proc = process._child.proc
        reader = process._reader
        process.stop()
        self.assertIsNotNone(proc.poll())
        self.assertFalse(reader.is_alive())
        self.assertIsNone(process._child.proc)
        self.assertRaises(requests.ConnectionError, requests.post,
                          process.url + '/tenants/t1',
                          json=test_consumer.alarm_body(), timeout=TIMEOUT)
        process.stop()  # twice is harmless


SERVERS = [('vm-1', 'tenant-a', 'compute-1', 'one'),
           ('vm-2', 'tenant-b', 'compute-1', 'two'),
           ('vm-3', 'tenant-a', 'compute-2', 'three')]


class TestNovaStandInProcess(ChildTestCase):

    def get(self, url, **kwargs):
        return requests.get(
            url, headers={'OpenStack-API-Version': 'compute 2.1'},
            timeout=TIMEOUT, **kwargs)

    def test_serves_its_servers(self):
        nova = nova_standin.NovaStandInProcess(SERVERS)
        self.addCleanup(nova.stop)
        self.assertIs(nova, nova.start())
        self.assertTrue(nova.url.startswith('http://127.0.0.1:'), nova.url)
        self.assertEqual(nova.url + '/v2.1', nova.compute_url)
        resp = self.get(nova.compute_url + '/servers/detail',
                        params={'all_tenants': 1})
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertEqual('compute 2.1',
                         resp.headers['OpenStack-API-Version'])
        servers = resp.json()['servers']
        self.assertEqual(
            sorted(SERVERS),
            sorted((s['id'], s['tenant_id'], s['OS-EXT-SRV-ATTR:host'],
                    s['name']) for s in servers))
        self.assertEqual({'ACTIVE'}, {s['status'] for s in servers})
        # A nova-compute service per host, as the controller needs.
        resp = self.get(nova.compute_url + '/os-services')
        self.assertEqual(['compute-1', 'compute-2'],
                         sorted(s['host'] for s in resp.json()['services']))

    def test_max_version_is_passed_on(self):
        nova = nova_standin.NovaStandInProcess(SERVERS, max_version='2.40')
        self.addCleanup(nova.stop)
        nova.start()
        resp = requests.get(nova.url + '/', timeout=TIMEOUT)
        self.assertEqual('2.40', resp.json()['versions'][0]['version'])

    def test_stop_ends_the_process_and_removes_its_files(self):
        nova = nova_standin.NovaStandInProcess(SERVERS).start()
        proc = nova._child.proc
        directory = nova._dir.name
        self.assertTrue(os.path.isfile(os.path.join(directory,
                                                    'servers.json')))
        nova.stop()
        self.assertIsNotNone(proc.poll())
        self.assertTrue(process_gone(proc.pid))
        self.assertFalse(os.path.exists(directory))
        self.assertRaises(requests.ConnectionError, self.get,
                          nova.compute_url + '/servers/detail')
        nova.stop()  # twice is harmless

    def test_failed_start_removes_its_files(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MonkeyPatch('tempfile.tempdir', tmp))
        # The child refuses a malformed version and exits, announcing
        # nothing (its traceback goes to stderr).
        nova = nova_standin.NovaStandInProcess(SERVERS,
                                               max_version='bogus')
        self.addCleanup(nova.stop)
        exc = self.assertRaises(RuntimeError, nova.start)
        self.assertIn('the Nova stand-in process', str(exc))
        self.assertEqual([], os.listdir(tmp))
        self.assertIsNone(nova._child)
