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

"""S1: services started at once on one fresh delivery database.

Each trial starts an inspector and listeners together (as systemd does at
boot) on one new database: by default a SQLite file in one ``state_path``
they share; with ``DOCTOR_PLUGIN_BENCH_DATABASE_URL`` set to a database
server's URL (e.g. ``postgresql+psycopg2://postgres@127.0.0.1/postgres``),
a new database made on that server for the trial and dropped after it.
A start fails when a service exits or does not become ready in 60 s.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing
import uuid

import requests
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from doctor_plugin.bench import harness
from doctor_plugin.common import urls
from doctor_plugin import exceptions
from doctor_plugin.testing import childproc

S1_TRIALS = 20
S1_LISTENERS = 2
DATABASE_URL_ENV = 'DOCTOR_PLUGIN_BENCH_DATABASE_URL'
READY_TIMEOUT = 60.0
#: The listener has no endpoint: alive this long after the inspector
#: answers counts as started (it opens the database before that).
LISTENER_SETTLE = 2.0

_MAIN = {'doctor-plugin-inspector': 'inspector',
         'doctor-plugin-listener': 'listener'}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _config(path: str, transport_url: str, state_path: str,
            connection: str | None, port: int, tag: str) -> None:
    with open(path, 'w') as f:
        f.write(f"""[DEFAULT]
transport_url = {transport_url}
state_path = {state_path}
pipeline_cfg_file = {state_path}/pipeline.yaml
[delivery]
{'connection = ' + connection if connection else ''}
[inspector]
port = {port}
shared_secret = {secrets.token_hex(32)}
topology_file = {state_path}/topology.yaml
notification_topics = versioned_notifications.{tag}
notification_pool = doctor-inspector.{tag}
[alarms]
definitions_file = {state_path}/alarms.yaml
[listener]
event_topics = alarm.{tag}
""")


class _Trial:
    """One start of the services on one new database."""

    def __init__(self, transport_url: str, workdir: str,
                 server_url: str | None, listeners: int) -> None:
        self.transport_url = transport_url
        self.dir = tempfile.mkdtemp(prefix='s1-', dir=workdir)
        self.server_url = server_url
        self.listeners = listeners
        self.database: str | None = None

    def _fresh_database(self) -> str | None:
        if not self.server_url:
            return None
        url = sa.engine.make_url(self.server_url)
        self.database = f'doctor_s1_{uuid.uuid4().hex[:12]}'
        admin = sa.create_engine(url, isolation_level='AUTOCOMMIT')
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE {self.database}')
        admin.dispose()
        return url.set(database=self.database).render_as_string(
            hide_password=False)

    def _drop_database(self) -> None:
        if not self.database or self.server_url is None:
            return
        admin = sa.create_engine(self.server_url,
                                 isolation_level='AUTOCOMMIT')
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS {self.database}')
        admin.dispose()

    def run(self) -> tuple[float, dict[str, str]]:
        """Seconds until all started, and why each failed one failed."""
        for name, text in (
                ('pipeline.yaml', 'sources: [{name: s, events: ["*"], '
                 'sinks: [k]}]\nsinks: [{name: k, notifiers: '
                 '["log://"]}]\n'),
                ('topology.yaml', 'hosts: {}\n'),
                ('alarms.yaml', 'alarms: []\n')):
            with open(os.path.join(self.dir, name), 'w') as f:
                f.write(text)
        connection = self._fresh_database()
        port = _free_port()
        tag = f's1-{uuid.uuid4().hex[:12]}'
        scripts = (['doctor-plugin-inspector']
                   + ['doctor-plugin-listener'] * self.listeners)
        procs: dict[str, tuple[subprocess.Popen, str]] = {}
        started_at = time.monotonic()
        try:
            for i, script in enumerate(scripts):
                name = f'{script}-{i}'
                conf = os.path.join(self.dir, f'{name}.conf')
                _config(conf, self.transport_url, self.dir, connection,
                        port, tag)
                log_path = os.path.join(self.dir, f'{name}.log')
                with open(log_path, 'w') as log:
                    proc = subprocess.Popen(
                        [sys.executable, '-c',
                         f'import sys; from doctor_plugin.cmd import '
                         f'{_MAIN[script]}; sys.exit({_MAIN[script]}'
                         f'.main())', '--config-file', conf],
                        stdout=log, stderr=subprocess.STDOUT)
                procs[name] = (proc, log_path)
            inspector, _ = procs['doctor-plugin-inspector-0']
            deadline = started_at + READY_TIMEOUT
            while inspector.poll() is None and time.monotonic() < deadline:
                try:
                    if requests.get(f'http://127.0.0.1:{port}/healthz',
                                    timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.05)
            ready = time.monotonic() - started_at
            time.sleep(LISTENER_SETTLE)
            failed = {}
            for name, (proc, log_path) in procs.items():
                if proc.poll() is not None:
                    # Without this trial's names, to count alike reasons.
                    why = _last_line(log_path).replace(self.dir, '<dir>')
                    if self.database:
                        why = why.replace(self.database, '<database>')
                    failed[name] = f'exited with {proc.returncode}: {why}'
            if inspector.poll() is None and ready >= READY_TIMEOUT:
                failed['doctor-plugin-inspector-0'] = 'not ready in 60 s'
            return ready, failed
        finally:
            for proc, _ in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc, _ in procs.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            self._drop_database()


def _last_line(path: str) -> str:
    lines = childproc.log_tail(path, 5).strip().splitlines()
    return lines[-1] if lines else '(empty log)'


def _check_server(server_url: str) -> str:
    """The backend of ``server_url``, once its driver is known to load.

    :raises DoctorPluginError: if the URL is not one, or its driver is
        not installed
    """
    try:
        url = sa.engine.make_url(server_url)
        url.get_dialect().import_dbapi()
    except sa_exc.ArgumentError as exc:
        raise exceptions.DoctorPluginError(
            f'S1: {DATABASE_URL_ENV} is not a database URL ({exc}); '
            f'write e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/'
            f'postgres') from None
    except ImportError as exc:
        raise exceptions.DoctorPluginError(
            f'S1 on {urls.redact(server_url)} needs its database driver '
            f'({exc}); install it (psycopg2 comes with {harness.EXTRA_HINT})'
        ) from None
    return url.get_backend_name()


def run_s1(options: typing.Any, log: typing.Callable[[str], None]
           ) -> harness.ScenarioResult:
    """N services started at once on one database: how many starts fail."""
    trials = options.trials or S1_TRIALS
    server_url = os.environ.get(DATABASE_URL_ENV) or None
    database = 'sqlite'
    if server_url:
        database = _check_server(server_url)
    services = 1 + S1_LISTENERS
    failures = 0
    failed_services = 0
    reasons: dict[str, int] = {}
    ready_ms = []
    with tempfile.TemporaryDirectory(prefix='doctor-bench-s1-') as workdir:
        for trial in range(trials):
            ready, failed = _Trial(options.transport_url, workdir,
                                   server_url, S1_LISTENERS).run()
            ready_ms.append(ready * 1000.0)
            if failed:
                failures += 1
                failed_services += len(failed)
                for why in failed.values():
                    why = why[why.find(': ') + 2:][-300:]
                    reasons[why] = reasons.get(why, 0) + 1
            log(f'S1 trial {trial + 1}/{trials}: '
                f'{services - len(failed)}/{services} started')
    return harness.ScenarioResult(
        scenario='S1', transport=options.transport_url.split(':', 1)[0],
        trials=trials, latency_ms=harness.latency_summary(ready_ms),
        sent=trials * services, received=trials * services - failed_services,
        lost=failed_services, duplicates=0,
        target='startup_failures == 0', met=failures == 0,
        env=harness.environment(options.transport_url),
        extra={'startup_failures': failures, 'services': services,
               'database': database, 'failed_services': failed_services,
               'failure_reasons': reasons})
