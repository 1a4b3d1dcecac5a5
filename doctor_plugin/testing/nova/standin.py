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

"""``NovaStandIn``: Nova's compute API on a local port, for tests.

It is put together from its parts: the state
(:mod:`~doctor_plugin.testing.nova.model`), the HTTP routes
(:mod:`~doctor_plugin.testing.nova.api`) and the notifications
(:mod:`~doctor_plugin.testing.nova.notifications`); this module holds what
a test calls to run it and to make it misbehave.
"""

from __future__ import annotations

import collections
import itertools
import threading
import typing

from oslo_log import log as logging
import oslo_messaging

from doctor_plugin.testing.nova import api
from doctor_plugin.testing.nova import model
from doctor_plugin.testing.nova import notifications

LOG = logging.getLogger(__name__)


class NovaStandIn(api.NovaAPI, notifications.NovaNotifications):
    """Nova's compute API on ``host:port`` (port 0 picks a free one).

    :param min_version: the oldest microversion served (also the default
        when a request names none, as Nova's is 2.1)
    :param max_version: the newest microversion served (``latest``)
    :param token: if set, API requests must carry it in ``X-Auth-Token``;
        version discovery stays open, as Nova's does
    :param page_limit: Nova's ``[api] max_limit``: the largest page of
        servers, and the page size when a request gives no ``limit``
    :param host: the address to listen on
    :param port: the port; after :meth:`come_back` the same one again

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    Every method is thread-safe.
    """

    def __init__(self, min_version: str = '2.1', max_version: str = '2.96',
                 token: str | None = None, page_limit: int = 1000,
                 host: str = '127.0.0.1', port: int = 0) -> None:
        self.min_version = model.parse_version(min_version)
        self.max_version = model.parse_version(max_version)
        if self.min_version > self.max_version:
            raise ValueError(f'min_version {min_version} is newer than '
                             f'max_version {max_version}')
        if page_limit < 1:
            raise ValueError(f'page_limit must be at least 1, got '
                             f'{page_limit}')
        self.token = token
        self.page_limit = page_limit
        self.calls: list[model.Call] = []

        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._server: api.NovaHTTPServer | None = None
        self._thread: threading.Thread | None = None

        self._services: dict[tuple[str, str], dict] = {}
        self._service_ids = itertools.count(1)
        self._servers: dict[str, dict] = {}
        # Serialised /servers/detail entries, and listings by filter, so
        # that paging through 100,000 servers costs a join per page.
        self._server_json: dict[str, bytes] = {}
        self._listings: dict[tuple, tuple[list[str], dict[str, int]]] = {}

        self._latency = 0.0
        self._failures: collections.deque[list] = collections.deque()
        self._outage: str | None = None
        self._released = threading.Event()
        self._released.set()
        self._stopping = False

        self._notifier: oslo_messaging.Notifier | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        """The root URL (Nova's version discovery document)."""
        if not self._port:
            raise RuntimeError('the Nova stand-in has no port yet: call '
                               'start() first')
        return f'http://{self._host}:{self._port}'

    @property
    def compute_url(self) -> str:
        """The compute endpoint a client uses (the catalog's URL)."""
        return self.url + model.API_PREFIX

    def start(self) -> NovaStandIn:
        """Listen and serve in a daemon thread."""
        self._stopping = False
        self._listen()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections, release hung requests."""
        with self._lock:
            self._stopping = True
        self._released.set()
        self._close_listener()

    def __enter__(self) -> NovaStandIn:
        return self.start()

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.stop()

    def _listen(self) -> None:
        server = api.NovaHTTPServer((self._host, self._port), self)
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={'poll_interval': 0.05},
            name='doctor-nova-standin', daemon=True)
        with self._lock:
            self._server, self._thread = server, thread
        thread.start()

    def _close_listener(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if thread is not None:
            thread.join(5)

    def force_downs(self) -> collections.Counter[str]:
        """How many accepted requests forced each host's service down.

        Both forms count: ``PUT /os-services/{id}`` (2.53 and later) and
        ``PUT /os-services/force-down`` (before).
        """
        with self._lock:
            host_of = {record['uuid']: record['host']
                       for record in self._services.values()}
            counts: collections.Counter[str] = collections.Counter()
            for call in self.calls:
                body = call.body if isinstance(call.body, dict) else {}
                if (call.method != 'PUT' or call.status != 200
                        or body.get('forced_down') is not True
                        or not call.path.startswith('/v2.1/os-services/')):
                    continue
                tail = call.path.rsplit('/', 1)[1]
                host = body.get('host') if tail == 'force-down' else (
                    host_of.get(tail))
                if host:
                    counts[str(host)] += 1
            return counts

    # -- fault injection ---------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Delay every response by ``seconds`` (0 for none)."""
        if seconds < 0:
            raise ValueError(f'latency must not be negative, got {seconds}')
        with self._lock:
            self._latency = seconds

    def fail_next(self, count: int, status: int = 500,
                  path_prefix: str = '') -> None:
        """Make the next ``count`` matching requests fail with ``status``.

        They get a Nova-style error body. ``path_prefix`` matches the
        full path (``/v2.1/os-services``) or, when it does not start with
        ``/v2.1``, the path after it (``/os-services``); empty matches
        every request.
        """
        if count < 1:
            return
        with self._lock:
            self._failures.append([count, status, path_prefix])

    def go_down(self, mode: str = 'refuse') -> None:
        """Fail as a dead nova-api would, until :meth:`come_back`.

        ``refuse``: the listening socket closes and open connections are
        cut, so connecting is refused; ``503``: every request answers 503;
        ``hang``: requests are read but not answered.
        """
        if mode not in model.OUTAGE_MODES:
            raise ValueError(f'unknown outage mode {mode!r}; use one of '
                             f'{", ".join(model.OUTAGE_MODES)}')
        self.come_back()
        with self._lock:
            self._outage = mode
            if mode == 'hang':
                self._released.clear()
        if mode == 'refuse':
            self._close_listener()
        LOG.debug('Nova stand-in on %s is down (%s)', self.url, mode)

    def come_back(self) -> None:
        """End an outage; listen on the same port again if it had closed."""
        with self._lock:
            outage, self._outage = self._outage, None
            listening = self._server is not None
        self._released.set()
        if outage == 'refuse' and not listening and not self._stopping:
            self._listen()
