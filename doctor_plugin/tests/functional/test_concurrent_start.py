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

"""Services that start at once on one fresh delivery database all start.

As systemd starts them at boot: inspectors and listeners of one host
share its ``state_path`` (a SQLite file), or several hosts share one
PostgreSQL database, and each finds the tables missing. The processes
are the console scripts, started the way test_services starts them.
"""

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time

import fixtures
import requests

from doctor_plugin.testing import broker
from doctor_plugin.testing import services
from doctor_plugin.tests.functional import base
from doctor_plugin.tests.functional import test_services

INSPECTORS = 2
LISTENERS = 2
SQLITE_ROUNDS = 3
POSTGRESQL_ROUNDS = 2


class TestConcurrentStart(base.FunctionalTestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        with open(os.path.join(self.dir, 'pipeline.yaml'), 'w') as f:
            f.write('sources: [{name: s, events: ["*"], sinks: [k]}]\n'
                    'sinks: [{name: k, notifiers: ["log://"]}]\n')
        with open(os.path.join(self.dir, 'topology.yaml'), 'w') as f:
            f.write('hosts: {}\n')
        with open(os.path.join(self.dir, 'alarms.yaml'), 'w') as f:
            f.write('alarms: []\n')
        self.addCleanup(
            broker.delete_queues, base.TRANSPORT_URL,
            broker.listener_queue_names([f'alarm.start-{self.run_id}'])
            + [f'doctor-inspector.start-{self.run_id}'])

    def config(self, name, state_path, connection, port=None):
        path = os.path.join(self.dir, f'{name}.conf')
        with open(path, 'w') as f:
            f.write(f"""[DEFAULT]
transport_url = {base.TRANSPORT_URL}
state_path = {state_path}
pipeline_cfg_file = {self.dir}/pipeline.yaml
[delivery]
{'connection = ' + connection if connection else ''}
[inspector]
port = {port or 0}
shared_secret = {secrets.token_hex(32)}
topology_file = {self.dir}/topology.yaml
notification_topics = versioned_notifications.start-{self.run_id}
notification_pool = doctor-inspector.start-{self.run_id}
[alarms]
definitions_file = {self.dir}/alarms.yaml
[listener]
event_topics = alarm.start-{self.run_id}
""")
        return path

    def spawn(self, script, conf_file):
        # A log file, not a pipe, as in test_services.
        log = open(conf_file[:-len('.conf')] + '.log', 'w+')
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), script),
             '--config-file', conf_file],
            stdout=log, stderr=subprocess.STDOUT, text=True)
        proc.log = log.name
        self.addCleanup(self.stop, proc)
        return proc

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def output(self, proc):
        with open(proc.log) as f:
            return f.read()

    def start_all(self, round_no, state_path, connection=None,
                  database_file=None):
        """Start the services at once; fail unless every one started."""
        procs = {}
        ports = {}
        for i in range(INSPECTORS):
            name = f'r{round_no}-inspector-{i}'
            ports[name] = test_services.free_port()
            procs[name] = (
                'doctor-plugin-inspector',
                self.config(name, state_path, connection, ports[name]))
        for i in range(LISTENERS):
            name = f'r{round_no}-listener-{i}'
            procs[name] = ('doctor-plugin-listener',
                           self.config(name, state_path, connection))
        hold = None
        if database_file:
            # Keep the fresh file locked until every service has opened
            # it (or 3 s), so that they all look for the tables in the
            # same few milliseconds, not spread over their import times.
            hold = sqlite3.connect(database_file, isolation_level=None)
            hold.execute('BEGIN EXCLUSIVE')
        started = {name: self.spawn(script, conf)
                   for name, (script, conf) in procs.items()}
        if hold:
            self.wait_open(list(started.values()), database_file)
            hold.execute('ROLLBACK')
            hold.close()
        deadline = time.monotonic() + 60
        for name, port in ports.items():
            proc = started[name]
            while True:
                if proc.poll() is not None:
                    break
                try:
                    if requests.get(f'http://127.0.0.1:{port}/healthz',
                                    timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                self.assertLess(time.monotonic(), deadline,
                                f'{name} did not answer in 60 s: '
                                f'{self.output(proc)}')
                time.sleep(0.1)
        # The listeners have no HTTP endpoint; they open the database
        # before the inspectors answer, on a machine as loaded as this.
        time.sleep(2)
        failed = {name: f'exited with {proc.returncode}: '
                        f'{self.output(proc)[-2000:]}'
                  for name, proc in started.items()
                  if proc.poll() is not None}
        self.assertEqual({}, failed)
        for name, proc in started.items():
            self.assertEqual(0, self.stop(proc), self.output(proc))

    def wait_open(self, procs, path, patience=3.0):
        real = os.path.realpath(path)
        first = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            have = 0
            for proc in procs:
                fd_dir = f'/proc/{proc.pid}/fd'
                try:
                    links = [os.readlink(os.path.join(fd_dir, fd))
                             for fd in os.listdir(fd_dir)]
                except OSError:
                    continue
                have += real in links
            if have and first is None:
                first = time.monotonic()
            if have == len(procs) or (
                    first and time.monotonic() - first > patience):
                return
            time.sleep(0.01)

    def test_services_on_one_sqlite_file(self):
        for round_no in range(SQLITE_ROUNDS):
            state_path = os.path.join(self.dir, f'state-{round_no}')
            os.makedirs(state_path)
            self.start_all(round_no, state_path, database_file=os.path.join(
                state_path, 'deliveries.sqlite'))

    def test_services_on_one_postgresql_database(self):
        self.require(services.problem('PostgreSQL'))
        for round_no in range(POSTGRESQL_ROUNDS):
            database = services.FreshDatabase(
                services.DATABASE_SERVER_URL, 'doctor_start').create()
            self.addCleanup(database.drop)
            self.start_all(round_no, os.path.join(self.dir, 'state'),
                           database.url)
