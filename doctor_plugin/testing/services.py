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

"""The shared services the cluster tests and benchmarks run against.

Redis (the tooz coordinator), PostgreSQL (the shared database) and
RabbitMQ (the bus) on loopback, as ``tools/start-services.sh`` starts
them; each address can be moved with an environment variable. A test
calls ``self.require(problems())``: it skips on a developer's machine
where a service is down and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import socket
from urllib import parse as urlparse
import uuid

import sqlalchemy as sa

REDIS_URL = os.environ.get('DOCTOR_PLUGIN_TEST_REDIS_URL',
                           'redis://127.0.0.1:6379')
DATABASE_SERVER_URL = os.environ.get(
    'DOCTOR_PLUGIN_TEST_DATABASE_URL',
    'postgresql+psycopg2://postgres@127.0.0.1:5432/test')
TRANSPORT_URL = os.environ.get('DOCTOR_PLUGIN_TEST_TRANSPORT_URL',
                               'rabbit://guest:guest@127.0.0.1:5672/')


def free_port(host: str = '127.0.0.1') -> int:
    """A port of ``host`` that nothing listens on now (refused until bound)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


_SERVICES = {
    # name: (url, default port, the variable that moves it)
    'Redis': (REDIS_URL, 6379, 'DOCTOR_PLUGIN_TEST_REDIS_URL'),
    'PostgreSQL': (DATABASE_SERVER_URL, 5432,
                   'DOCTOR_PLUGIN_TEST_DATABASE_URL'),
    'RabbitMQ': (TRANSPORT_URL, 5672, 'DOCTOR_PLUGIN_TEST_TRANSPORT_URL'),
}


def address(url: str, default_port: int) -> tuple[str, int]:
    """The (host, port) of the first server of ``url``."""
    parts = urlparse.urlsplit(url.split(',', 1)[0])
    return parts.hostname or '127.0.0.1', parts.port or default_port


def problem(name: str) -> str | None:
    """Why service ``name`` (Redis, PostgreSQL, RabbitMQ) is unreachable.

    :returns: what to do about it, or None if it answers
    """
    url, default_port, variable = _SERVICES[name]
    host, port = address(url, default_port)
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return (f'{name} is not reachable at {host}:{port} ({exc}); start '
                f'it with tools/start-services.sh or set {variable}')


def problems(*names: str) -> str | None:
    """The first of ``names`` (default: all three) that is unreachable."""
    for name in names or tuple(_SERVICES):
        found = problem(name)
        if found:
            return found
    return None


class FreshDatabase:
    """A database of its own on a PostgreSQL server, dropped at the end."""

    def __init__(self, server_url: str, prefix: str = 'doctor') -> None:
        self.server = sa.engine.make_url(server_url)
        self.name = f'{prefix}_{uuid.uuid4().hex[:12]}'
        self._admin = sa.create_engine(self.server.set(database='postgres'),
                                       isolation_level='AUTOCOMMIT')

    @property
    def url(self) -> str:
        return self.server.set(database=self.name).render_as_string(
            hide_password=False)

    def create(self) -> FreshDatabase:
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE {self.name}')
        return self

    def drop(self) -> None:
        with self._admin.connect() as conn:
            conn.exec_driver_sql(
                f'DROP DATABASE IF EXISTS {self.name} WITH (FORCE)')
        self._admin.dispose()
