"""A local stand-in for Nova: the compute API our controller calls.

:class:`NovaStandIn` is a real HTTP server on loopback that speaks the part
of Nova's compute API v2.1 that the inspector's controller and topology
use, in Nova's wire format: version discovery, microversion negotiation,
``os-services`` (list, force-down by host and binary before 2.53, by
service UUID from 2.53), ``os-resetState``, and ``servers/detail`` with
Nova's marker pagination. With :meth:`NovaStandIn.enable_notifications` it
also sends Nova's versioned ``service.update`` and ``instance.*``
notifications on an oslo.messaging transport.

Unit and functional tests, the demo and the benchmark use it where a cloud
would have nova-api. It keeps every request it answered (:attr:`calls`)
and can misbehave on demand: added latency, injected errors, and the
outages a client sees when nova-api dies (:meth:`NovaStandIn.go_down`).

Run it alone with ``python -m doctor_plugin.testing.nova``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import http.server
import itertools
import json
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import typing
import urllib.parse
import uuid

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging

from doctor_plugin.common import messaging
from doctor_plugin.testing import childproc

LOG = logging.getLogger(__name__)

API_PREFIX = '/v2.1'
COMPUTE_BINARY = 'nova-compute'

#: First microversion with ``forced_down`` and ``PUT /os-services/force-down``.
FORCED_DOWN_VERSION = (2, 11)
#: First microversion addressing services by UUID (``PUT /os-services/{id}``).
SERVICE_UUID_VERSION = (2, 53)

#: Nova's fault names by status; any other status is a ``computeFault``.
FAULT_NAMES = {400: 'badRequest', 401: 'unauthorized', 403: 'forbidden',
               404: 'itemNotFound', 405: 'badMethod',
               409: 'conflictingRequest', 413: 'overLimit',
               415: 'badMediaType', 429: 'overLimit', 501: 'notImplemented',
               503: 'serviceUnavailable'}

#: Server status of Nova's API -> (vm_state, power_state, task_state).
STATUSES = {
    'ACTIVE': ('active', 1, None),
    'BUILD': ('building', 0, 'scheduling'),
    'ERROR': ('error', 1, None),
    'SHUTOFF': ('stopped', 4, None),
    'PAUSED': ('paused', 3, None),
    'SUSPENDED': ('suspended', 7, None),
    'MIGRATING': ('active', 1, 'migrating'),
    'SHELVED_OFFLOADED': ('shelved_offloaded', 4, None),
    'SOFT_DELETED': ('soft-delete', 4, None),
    'DELETED': ('deleted', 0, None),
}
#: The server status of a vm_state (the reverse of :data:`STATUSES`).
_VM_STATE_STATUS = {'active': 'ACTIVE', 'error': 'ERROR'}
#: Nova's power_state names, as its notifications spell them.
POWER_STATES = {0: 'pending', 1: 'running', 3: 'paused', 4: 'shutdown',
                6: 'crashed', 7: 'suspended'}

OUTAGE_MODES = ('refuse', '503', 'hang')

_VERSION_RE = re.compile(r'^([1-9]\d*)\.([1-9]\d*|0)$')
_SERVER_PATH = re.compile(r'^/v2\.1/servers/([^/]+)(/action)?$')
_SERVICE_PATH = re.compile(r'^/v2\.1/os-services/([^/]+)$')
_BOOLEANS = {'true': True, '1': True, 'on': True, 'yes': True,
             'false': False, '0': False, 'off': False, 'no': False}


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One request the stand-in answered, as it answered it.

    ``path`` is the full path (``/v2.1/os-services``) without the query;
    ``microversion`` is the negotiated ``2.x`` (None outside ``/v2.1``);
    ``at`` is when the request arrived.
    """

    method: str
    path: str
    query: dict[str, str]
    microversion: str | None
    body: typing.Any
    status: int
    at: float = dataclasses.field(default_factory=time.time)


class _Fault(Exception):
    """An error answer in Nova's format."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _version_text(version: tuple[int, int]) -> str:
    return f'{version[0]}.{version[1]}'


def parse_version(text: str) -> tuple[int, int]:
    """``'2.53'`` as ``(2, 53)``; ValueError if not ``Major.Minor``."""
    match = _VERSION_RE.match(text.strip())
    if not match:
        raise ValueError(f'API Version String {text} is of invalid format. '
                         f'Must be of format MajorNum.MinorNum.')
    return int(match.group(1)), int(match.group(2))


def _api_time(when: float) -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(when))


def _service_time(when: float) -> str:
    # os-services shows Nova's DB time, with microseconds and no zone.
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(when)) + (
        '.%06d' % int(when % 1 * 1e6))


def _fault_body(status: int, message: str) -> dict:
    name = FAULT_NAMES.get(status, 'computeFault')
    return {name: {'code': status, 'message': message}}


def _boolean(value: typing.Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    raise _Fault(400, f'Invalid input for field/attribute {field}. Value: '
                      f'{value!r}. {value!r} is not one of the boolean '
                      f'values')


def _versioned(name: str, version: str, data: dict) -> dict:
    return {'nova_object.name': name, 'nova_object.namespace': 'nova',
            'nova_object.version': version, 'nova_object.data': data}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Headers and body go out in separate writes; with Nagle's algorithm
    # the body would wait for the client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    server: _NovaHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def _dispatch(self) -> None:
        self.server.standin._serve(self)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _dispatch

    def log_message(self, format: str, *args: typing.Any) -> None:
        LOG.debug('nova stand-in: ' + format, *args)


class _NovaHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops the SYNs of a burst of clients.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int],
                 standin: NovaStandIn) -> None:
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def drop_connections(self) -> None:
        """Cut every open connection, as a dying process's kernel would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class NovaStandIn:
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
        self.min_version = parse_version(min_version)
        self.max_version = parse_version(max_version)
        if self.min_version > self.max_version:
            raise ValueError(f'min_version {min_version} is newer than '
                             f'max_version {max_version}')
        if page_limit < 1:
            raise ValueError(f'page_limit must be at least 1, got '
                             f'{page_limit}')
        self.token = token
        self.page_limit = page_limit
        self.calls: list[Call] = []

        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._server: _NovaHTTPServer | None = None
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
        return self.url + API_PREFIX

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
        server = _NovaHTTPServer((self._host, self._port), self)
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
        if mode not in OUTAGE_MODES:
            raise ValueError(f'unknown outage mode {mode!r}; use one of '
                             f'{", ".join(OUTAGE_MODES)}')
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

    # -- state -------------------------------------------------------------

    def add_service(self, host: str, binary: str = COMPUTE_BINARY) -> dict:
        """Register a service (if not there yet); its record as listed."""
        with self._lock:
            return self._service_view(self._ensure_service(host, binary),
                                      self.max_version)

    def _ensure_service(self, host: str, binary: str) -> dict:
        record = self._services.get((host, binary))
        if record is None:
            now = time.time()
            record = {
                'id': next(self._service_ids), 'uuid': str(uuid.uuid4()),
                'host': host, 'binary': binary,
                'topic': binary[len('nova-'):] if binary.startswith(
                    'nova-') else binary,
                'zone': 'nova' if binary == COMPUTE_BINARY else 'internal',
                'disabled': False, 'disabled_reason': None,
                'forced_down': False, 'report_count': 1, 'version': 66,
                'created_at': now, 'updated_at': now,
            }
            self._services[(host, binary)] = record
        return record

    def service(self, host: str, binary: str = COMPUTE_BINARY) -> dict:
        """A service as Nova's latest microversion lists it (a copy).

        Besides the API's fields: ``uuid``, ``legacy_id`` (the integer id
        before 2.53) and ``disabled``.
        """
        with self._lock:
            record = self._services.get((host, binary))
            if record is None:
                raise KeyError(f'no {binary} service on host {host!r}')
            view = self._service_view(record, self.max_version)
            view.update(uuid=record['uuid'], legacy_id=record['id'],
                        disabled=record['disabled'])
            return view

    def add_server(self, server_id: str, project_id: str, host: str,
                   name: str = '', status: str = 'ACTIVE') -> dict:
        """Add a server on ``host`` (and a nova-compute service there)."""
        if status not in STATUSES:
            raise ValueError(f'unknown server status {status!r}; use one '
                             f'of {", ".join(STATUSES)}')
        with self._lock:
            self._insert_server(server_id, project_id, host, name, status,
                                time.time())
            self._listings.clear()
            return self._server_view(self._servers[server_id])

    def add_servers(self, servers: typing.Iterable[
            tuple[str, str, str, str]]) -> None:
        """Add many ``(id, project_id, host, name)`` servers, ACTIVE."""
        now = time.time()
        with self._lock:
            for server_id, project_id, host, name in servers:
                self._insert_server(server_id, project_id, host, name,
                                    'ACTIVE', now)
            self._listings.clear()

    def _insert_server(self, server_id: str, project_id: str, host: str,
                       name: str, status: str, now: float) -> None:
        if server_id in self._servers:
            raise ValueError(f'server {server_id} exists already')
        vm_state, power_state, task_state = STATUSES[status]
        if (host, COMPUTE_BINARY) not in self._services:
            self._ensure_service(host, COMPUTE_BINARY)
        self._servers[server_id] = {
            'id': server_id, 'project_id': project_id,
            'user_id': 'fake', 'host': host, 'name': name,
            'status': status, 'vm_state': vm_state,
            'old_vm_state': vm_state, 'task_state': task_state,
            'power_state': power_state, 'created': now, 'updated': now,
        }

    def remove_server(self, server_id: str) -> None:
        """Delete a server (it disappears from every listing)."""
        with self._lock:
            self._get_server(server_id)
            del self._servers[server_id]
            self._server_json.pop(server_id, None)
            self._listings.clear()

    def move_server(self, server_id: str, host: str) -> None:
        """Move a server to ``host``, as a finished migration would."""
        with self._lock:
            record = self._get_server(server_id)
            if (host, COMPUTE_BINARY) not in self._services:
                self._ensure_service(host, COMPUTE_BINARY)
            record['host'] = host
            record['updated'] = time.time()
            self._server_json.pop(server_id, None)
            self._listings.clear()

    def server(self, server_id: str) -> dict:
        """A server as ``GET /servers/{id}`` shows it (a copy)."""
        with self._lock:
            return self._server_view(self._get_server(server_id))

    def _get_server(self, server_id: str) -> dict:
        try:
            return self._servers[server_id]
        except KeyError:
            raise KeyError(f'no server {server_id!r}') from None

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        """The recorded calls of ``method`` under ``path_prefix``.

        ``path_prefix`` matches as in :meth:`fail_next`.
        """
        with self._lock:
            return [call for call in self.calls
                    if call.method == method
                    and self._path_matches(call.path, path_prefix)]

    @staticmethod
    def _path_matches(path: str, prefix: str) -> bool:
        if path.startswith(prefix):
            return True
        return (not prefix.startswith(API_PREFIX)
                and path.startswith(API_PREFIX)
                and path[len(API_PREFIX):].startswith(prefix))

    # -- views ------------------------------------------------------------

    def _service_view(self, record: dict,
                      version: tuple[int, int]) -> dict:
        view = {
            'id': (record['uuid'] if version >= SERVICE_UUID_VERSION
                   else record['id']),
            'binary': record['binary'],
            'host': record['host'],
            'zone': record['zone'],
            'status': 'disabled' if record['disabled'] else 'enabled',
            'state': 'down' if record['forced_down'] else 'up',
            'updated_at': _service_time(record['updated_at']),
            'disabled_reason': record['disabled_reason'],
        }
        if version >= FORCED_DOWN_VERSION:
            view['forced_down'] = record['forced_down']
        return view

    def _server_links(self, server_id: str) -> list[dict]:
        return [{'rel': 'self',
                 'href': f'{self.compute_url}/servers/{server_id}'},
                {'rel': 'bookmark',
                 'href': f'{self.url}/servers/{server_id}'}]

    def _server_view(self, record: dict) -> dict:
        host = record['host']
        return {
            'id': record['id'],
            'name': record['name'],
            'status': record['status'],
            'tenant_id': record['project_id'],
            'user_id': record['user_id'],
            'created': _api_time(record['created']),
            'updated': _api_time(record['updated']),
            'OS-EXT-SRV-ATTR:host': host,
            'OS-EXT-SRV-ATTR:hypervisor_hostname': host,
            'OS-EXT-STS:vm_state': record['vm_state'],
            'OS-EXT-STS:task_state': record['task_state'],
            'OS-EXT-STS:power_state': record['power_state'],
            'links': self._server_links(record['id']),
        }

    def _serialised(self, server_id: str) -> bytes:
        data = self._server_json.get(server_id)
        if data is None:
            data = json.dumps(
                self._server_view(self._servers[server_id])).encode()
            self._server_json[server_id] = data
        return data

    def _listing(self, host: str | None, project: str | None
                 ) -> tuple[list[str], dict[str, int]]:
        """Server ids in Nova's default order (newest first), filtered."""
        key = (host, project)
        listing = self._listings.get(key)
        if listing is None:
            ids = [server_id for server_id, record in
                   reversed(self._servers.items())
                   if (host is None or record['host'] == host)
                   and (project is None
                        or record['project_id'] == project)]
            listing = (ids, {server_id: i for i, server_id in
                             enumerate(ids)})
            self._listings[key] = listing
        return listing

    def _version_document(self, full: bool = False) -> dict:
        document = {
            'id': 'v2.1',
            'status': 'CURRENT',
            'version': _version_text(self.max_version),
            'min_version': _version_text(self.min_version),
            'updated': '2013-07-23T11:33:21Z',
            'links': [{'rel': 'self', 'href': self.compute_url + '/'}],
        }
        if full:
            document['links'].append(
                {'rel': 'describedby', 'type': 'text/html',
                 'href': 'http://docs.openstack.org/'})
            document['media-types'] = [
                {'base': 'application/json',
                 'type': 'application/vnd.openstack.compute+json;'
                         'version=2.1'}]
        return document

    # -- HTTP --------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        arrived = time.time()
        path, _, query_text = handler.path.partition('?')
        query = dict(urllib.parse.parse_qsl(query_text,
                                            keep_blank_values=True))
        length = int(handler.headers.get('Content-Length') or 0)
        raw = handler.rfile.read(length) if length else b''
        method = handler.command

        with self._lock:
            outage = self._outage
        if outage == 'hang':
            self._released.wait()
            with self._lock:
                stopping, outage = self._stopping, self._outage
            if stopping or outage == 'refuse':
                handler.close_connection = True
                return
        with self._lock:
            latency = self._latency
        if latency:
            time.sleep(latency)

        body: typing.Any = None
        version: tuple[int, int] | None = None
        headers: dict[str, str] = {}
        try:
            if outage == '503':
                raise _Fault(503, 'The server is currently unavailable. '
                                  'Please try again at a later time.')
            self._inject_failure(path)
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise _Fault(400, 'Malformed request body') from None
            if method == 'GET' and path in ('/', API_PREFIX,
                                            API_PREFIX + '/'):
                status, reply = self._discovery(path)
            else:
                self._authenticate(handler, path)
                if path.startswith(API_PREFIX + '/'):
                    version = self._negotiate(handler)
                    headers = self._version_headers(version)
                status, reply = self._route(method, path, query, body,
                                            version)
        except _Fault as fault:
            status, reply = fault.status, _fault_body(fault.status,
                                                      fault.message)
            if status == 401:
                reply = {'error': {
                    'code': 401, 'title': 'Unauthorized',
                    'message': 'The request you have made requires '
                               'authentication.'}}
                headers['WWW-Authenticate'] = (
                    f'Keystone uri="{self.url}/identity"')
        # Recorded before the answer goes out, so that a client that has
        # its answer finds its call in ``calls``.
        with self._lock:
            self.calls.append(Call(
                method, path, query,
                _version_text(version) if version else None, body, status,
                arrived))
        self._reply(handler, status, reply, headers)

    def _inject_failure(self, path: str) -> None:
        with self._lock:
            for rule in self._failures:
                count, status, prefix = rule
                if self._path_matches(path, prefix):
                    rule[0] -= 1
                    if rule[0] <= 0:
                        self._failures.remove(rule)
                    break
            else:
                return
        raise _Fault(status, f'Injected failure ({status}) by the Nova '
                             f'stand-in.')

    def _authenticate(self, handler: _Handler, path: str) -> None:
        if self.token is None:
            return
        if handler.headers.get('X-Auth-Token') != self.token:
            raise _Fault(401, 'The request you have made requires '
                              'authentication.')

    def _negotiate(self, handler: _Handler) -> tuple[int, int]:
        requested = None
        for value in handler.headers.get_all('OpenStack-API-Version') or []:
            for item in value.split(','):
                service, _, version = item.strip().partition(' ')
                if service.lower() == 'compute':
                    requested = version.strip()
        if requested is None:
            requested = handler.headers.get('X-OpenStack-Nova-API-Version')
        if requested is None:
            return self.min_version
        if requested.strip().lower() == 'latest':
            return self.max_version
        try:
            version = parse_version(requested)
        except ValueError as exc:
            raise _Fault(400, str(exc)) from None
        if not self.min_version <= version <= self.max_version:
            raise _Fault(406, f'Version {requested} is not supported by the '
                              f'API. Minimum is '
                              f'{_version_text(self.min_version)} and '
                              f'maximum is '
                              f'{_version_text(self.max_version)}.')
        return version

    @staticmethod
    def _version_headers(version: tuple[int, int]) -> dict[str, str]:
        text = _version_text(version)
        return {'OpenStack-API-Version': f'compute {text}',
                'X-OpenStack-Nova-API-Version': text,
                'Vary': 'OpenStack-API-Version, '
                        'X-OpenStack-Nova-API-Version'}

    def _reply(self, handler: _Handler, status: int,
               reply: dict | bytes | None,
               headers: dict[str, str]) -> None:
        if reply is None:
            data = b''
        elif isinstance(reply, bytes):
            data = reply
        else:
            data = json.dumps(reply).encode()
        request_id = f'req-{uuid.uuid4()}'
        try:
            handler.send_response(status)
            if data:
                handler.send_header('Content-Type', 'application/json')
            handler.send_header('Content-Length', str(len(data)))
            handler.send_header('x-openstack-request-id', request_id)
            handler.send_header('x-compute-request-id', request_id)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            # The client gave up (timeout) or go_down() cut the line.
            handler.close_connection = True

    def _discovery(self, path: str) -> tuple[int, dict]:
        if path == '/':
            return 200, {'versions': [self._version_document()]}
        return 200, {'version': self._version_document(full=True)}

    def _route(self, method: str, path: str, query: dict[str, str],
               body: typing.Any, version: tuple[int, int] | None
               ) -> tuple[int, dict | bytes | None]:
        if version is not None:
            if path == '/v2.1/os-services':
                if method == 'GET':
                    return self._list_services(query, version)
                raise _Fault(405, 'The method specified is not allowed '
                                  'for this resource.')
            match = _SERVICE_PATH.match(path)
            if match and method == 'PUT':
                return self._update_service(match.group(1), body, version)
            if path in ('/v2.1/servers', '/v2.1/servers/detail'):
                if method == 'GET':
                    return self._list_servers(
                        query, path.endswith('/detail'))
                raise _Fault(405, 'The method specified is not allowed '
                                  'for this resource.')
            match = _SERVER_PATH.match(path)
            if match and match.group(2) and method == 'POST':
                return self._server_action(match.group(1), body)
            if match and not match.group(2) and method == 'GET':
                with self._lock:
                    record = self._servers.get(match.group(1))
                    if record is None:
                        raise _Fault(404, f'Instance {match.group(1)} '
                                          f'could not be found.')
                    return 200, {'server': self._server_view(record)}
        raise _Fault(404, 'The resource could not be found.')

    # -- os-services -------------------------------------------------------

    def _list_services(self, query: dict[str, str],
                       version: tuple[int, int]) -> tuple[int, dict]:
        host, binary = query.get('host'), query.get('binary')
        with self._lock:
            services = [
                self._service_view(record, version)
                for record in self._services.values()
                if (not host or record['host'] == host)
                and (not binary or record['binary'] == binary)]
        return 200, {'services': services}

    def _update_service(self, service_id: str, body: typing.Any,
                        version: tuple[int, int]) -> tuple[int, dict]:
        if not isinstance(body, dict):
            raise _Fault(400, 'Invalid input for field/attribute body. '
                              'Value: None. None is not of type '
                              '\'object\'')
        if version >= SERVICE_UUID_VERSION:
            return self._update_service_by_uuid(service_id, body, version)
        if service_id == 'force-down' and version >= FORCED_DOWN_VERSION:
            return self._force_down_by_host(body)
        if service_id in ('enable', 'disable', 'disable-log-reason'):
            return self._enable_by_host(service_id, body)
        raise _Fault(404, 'Unknown action')

    def _update_service_by_uuid(self, service_id: str, body: dict,
                                version: tuple[int, int]
                                ) -> tuple[int, dict]:
        # Nova validates the body against its 2.53 schema first, so the
        # old host/binary form fails with 400 before the id is looked at.
        extra = sorted(set(body) - {'status', 'disabled_reason',
                                    'forced_down'})
        if extra:
            raise _Fault(400, f'Invalid input for field/attribute body. '
                              f'Additional properties are not allowed '
                              f'({", ".join(map(repr, extra))} '
                              f'{"were" if len(extra) > 1 else "was"} '
                              f'unexpected)')
        status = body.get('status')
        if 'status' in body and status not in ('enabled', 'disabled'):
            raise _Fault(400, f'Invalid input for field/attribute status. '
                              f'Value: {status}. {status!r} is not one '
                              f'of [\'enabled\', \'disabled\']')
        forced_down = (_boolean(body['forced_down'], 'forced_down')
                       if 'forced_down' in body else None)
        try:
            uuid.UUID(service_id)
        except ValueError:
            raise _Fault(400, f'Invalid uuid {service_id}') from None
        with self._lock:
            record = next((r for r in self._services.values()
                           if r['uuid'] == service_id), None)
            if record is None:
                raise _Fault(404, f'Service {service_id} could not be '
                                  f'found.')
            if record['binary'] != COMPUTE_BINARY:
                raise _Fault(400, f'Updating a {record["binary"]} service '
                                  f'is not supported. Only nova-compute '
                                  f'services can be updated.')
            if status == 'enabled':
                if body.get('disabled_reason'):
                    raise _Fault(400, "Specifying 'disabled_reason' with "
                                      "status 'enabled' is invalid.")
                record['disabled'], record['disabled_reason'] = False, None
            elif status == 'disabled':
                record['disabled'] = True
                record['disabled_reason'] = body.get('disabled_reason')
            if forced_down is not None:
                record['forced_down'] = forced_down
            if status is None and forced_down is None:
                raise _Fault(400, "No updates were requested. Fields "
                                  "'status' or 'forced_down' should be "
                                  "specified.")
            record['updated_at'] = time.time()
            view = self._service_view(record, version)
            host, binary = record['host'], record['binary']
        self._notify_service(host, binary)
        return 200, {'service': view}

    def _host_binary(self, body: dict) -> dict:
        host, binary = body.get('host'), body.get('binary')
        for field, value in (('host', host), ('binary', binary)):
            if not isinstance(value, str) or not value:
                raise _Fault(400, f"Invalid input for field/attribute body. "
                                  f"Value: {json.dumps(body)}. '{field}' "
                                  f"is a required property")
        if binary != COMPUTE_BINARY:
            raise _Fault(400, f'Updating a {binary} service is not '
                              f'supported. Only nova-compute services can '
                              f'be updated.')
        record = self._services.get((host, binary))
        if record is None:
            raise _Fault(404, f'Could not find binary {binary} on host '
                              f'{host}.')
        return record

    def _force_down_by_host(self, body: dict) -> tuple[int, dict]:
        if 'forced_down' not in body:
            raise _Fault(400, 'Missing forced_down field')
        forced_down = _boolean(body['forced_down'], 'forced_down')
        with self._lock:
            record = self._host_binary(body)
            record['forced_down'] = forced_down
            record['updated_at'] = time.time()
            host, binary = record['host'], record['binary']
        self._notify_service(host, binary)
        return 200, {'service': {'host': host, 'binary': binary,
                                 'forced_down': forced_down}}

    def _enable_by_host(self, action: str, body: dict) -> tuple[int, dict]:
        reason = None
        if action == 'disable-log-reason':
            reason = body.get('disabled_reason')
            if not reason:
                raise _Fault(400, 'Missing disabled reason field')
        with self._lock:
            record = self._host_binary(body)
            record['disabled'] = action != 'enable'
            record['disabled_reason'] = reason
            record['updated_at'] = time.time()
            host, binary = record['host'], record['binary']
        self._notify_service(host, binary)
        reply = {'host': host, 'binary': binary,
                 'status': 'enabled' if action == 'enable' else 'disabled'}
        if reason:
            reply['disabled_reason'] = reason
        return 200, {'service': reply}

    # -- servers -----------------------------------------------------------

    def _list_servers(self, query: dict[str, str],
                      detail: bool) -> tuple[int, bytes]:
        limit = self.page_limit
        if 'limit' in query:
            try:
                limit = int(query['limit'])
            except ValueError:
                raise _Fault(400, 'limit param must be an integer') from None
            if limit < 0:
                raise _Fault(400, 'limit param must be positive')
            limit = min(limit, self.page_limit)
        marker = query.get('marker')
        project = query.get('project_id') or query.get('tenant_id')
        with self._lock:
            ids, positions = self._listing(query.get('host') or None,
                                           project or None)
            start = 0
            if marker is not None:
                if marker not in positions:
                    raise _Fault(400, f'marker [{marker}] not found')
                start = positions[marker] + 1
            page = ids[start:start + limit]
            if detail:
                entries = [self._serialised(server_id) for server_id in page]
            else:
                entries = [json.dumps({
                    'id': server_id,
                    'name': self._servers[server_id]['name'],
                    'links': self._server_links(server_id)}).encode()
                    for server_id in page]
        parts = [b'{"servers": [', b', '.join(entries), b']']
        if limit and len(page) == limit:
            params = dict(query, marker=page[-1])
            collection = 'servers/detail' if detail else 'servers'
            links = [{'rel': 'next',
                      'href': f'{self.compute_url}/{collection}?'
                              f'{urllib.parse.urlencode(params)}'}]
            parts.append(b', "servers_links": ' + json.dumps(links).encode())
        parts.append(b'}')
        return 200, b''.join(parts)

    def _server_action(self, server_id: str,
                       body: typing.Any) -> tuple[int, None]:
        if not isinstance(body, dict) or len(body) != 1:
            raise _Fault(400, 'Malformed request body')
        (action, argument), = body.items()
        if action != 'os-resetState':
            raise _Fault(400, f'There is no such action: {action}')
        state = argument.get('state') if isinstance(argument, dict) else None
        if state not in ('active', 'error'):
            raise _Fault(400, f'Invalid input for field/attribute state. '
                              f'Value: {state}. {state!r} is not one of '
                              f'[\'active\', \'error\']')
        with self._lock:
            record = self._servers.get(server_id)
            if record is None:
                raise _Fault(404, f'Instance {server_id} could not be '
                                  f'found.')
            record['old_vm_state'] = record['vm_state']
            record['old_task_state'] = record['task_state']
            record['vm_state'] = state
            record['status'] = _VM_STATE_STATUS[state]
            record['task_state'] = None
            record['updated'] = time.time()
            self._server_json.pop(server_id, None)
        if self._notifier is not None:
            self.emit_instance_update(server_id)
        return 202, None

    # -- notifications -----------------------------------------------------

    def enable_notifications(self, transport_url: str,
                             topic: str = 'versioned_notifications'
                             ) -> None:
        """Send Nova's versioned notifications on ``transport_url``.

        From then on forcing a service down (or up, enabling, disabling)
        sends ``service.update`` and resetting a server's state sends
        ``instance.update``, from the thread that made the change.
        """
        transport = messaging.get_transport(cfg.ConfigOpts(), transport_url)
        notifier = oslo_messaging.Notifier(
            transport, publisher_id='nova-compute', driver='messagingv2',
            topics=[topic])
        with self._lock:
            self._notifier = notifier

    def _require_notifier(self) -> oslo_messaging.Notifier:
        notifier = self._notifier
        if notifier is None:
            raise RuntimeError('notifications are off: call '
                               'enable_notifications() first')
        return notifier

    def _notify_service(self, host: str, binary: str) -> None:
        if self._notifier is not None:
            self.emit_service_update(host, binary)

    def service_update_payload(self, host: str,
                               binary: str = COMPUTE_BINARY) -> dict:
        """The ``ServiceStatusPayload`` 1.1 of a service, as Nova sends it."""
        with self._lock:
            record = self._services.get((host, binary))
            if record is None:
                raise KeyError(f'no {binary} service on host {host!r}')
            # A service that is not forced down keeps reporting in.
            last_seen_up = time.time()
            return _versioned('ServiceStatusPayload', '1.1', {
                'host': record['host'],
                'binary': record['binary'],
                'topic': record['topic'],
                'report_count': record['report_count'],
                'disabled': record['disabled'],
                'disabled_reason': record['disabled_reason'],
                'availability_zone': record['zone'],
                'last_seen_up': _api_time(last_seen_up),
                'forced_down': record['forced_down'],
                'version': record['version'],
                'uuid': record['uuid'],
            })

    def emit_service_update(self, host: str,
                            binary: str = COMPUTE_BINARY) -> None:
        """Send ``service.update`` with the service's current state."""
        notifier = self._require_notifier()
        payload = self.service_update_payload(host, binary)
        notifier.prepare(publisher_id=f'{binary}:{host}').info(
            {}, 'service.update', payload)

    def instance_payload(self, server_id: str,
                         event_type: str = 'instance.update') -> dict:
        """The versioned payload Nova sends with ``event_type``.

        ``instance.update`` carries an ``InstanceUpdatePayload`` (with the
        last state change in ``state_update``), ``instance.create.*`` an
        ``InstanceCreatePayload`` and every other ``instance.*`` an
        ``InstanceActionPayload``. ``instance.delete.end`` shows the
        server deleted.
        """
        with self._lock:
            record = dict(self._get_server(server_id))
        deleted = event_type == 'instance.delete.end'
        state = 'deleted' if deleted else record['vm_state']
        power_state = 0 if deleted else record['power_state']
        gone_at = _api_time(time.time()) if deleted else None
        data = {
            'uuid': record['id'],
            'user_id': record['user_id'],
            'tenant_id': record['project_id'],
            'reservation_id': 'r-' + record['id'][:8],
            'display_name': record['name'],
            'display_description': record['name'],
            'host_name': record['name'],
            'host': record['host'],
            'node': record['host'],
            'os_type': None,
            'architecture': 'x86_64',
            'availability_zone': 'nova',
            'flavor': _versioned('FlavorPayload', '1.4', {
                'flavorid': 'standin', 'name': 'standin', 'memory_mb': 512,
                'vcpus': 1, 'root_gb': 1, 'ephemeral_gb': 0, 'swap': 0,
                'rxtx_factor': 1.0, 'vcpu_weight': 0, 'disabled': False,
                'is_public': True, 'extra_specs': {}, 'projects': None,
                'description': None}),
            'image_uuid': '155d900f-4e14-4e4c-a73d-069cbf4541e6',
            'key_name': None,
            'kernel_id': '',
            'ramdisk_id': '',
            'created_at': _api_time(record['created']),
            'launched_at': _api_time(record['created']),
            'terminated_at': gone_at,
            'deleted_at': gone_at,
            'updated_at': _api_time(record['updated']),
            'state': state,
            'power_state': POWER_STATES.get(power_state, 'pending'),
            'task_state': None if deleted else record['task_state'],
            'progress': 0,
            'ip_addresses': [],
            'block_devices': [],
            'metadata': {},
            'locked': False,
            'auto_disk_config': 'MANUAL',
            'request_id': f'req-{uuid.uuid4()}',
            'action_initiator_user': record['user_id'],
            'action_initiator_project': record['project_id'],
        }
        if event_type == 'instance.update':
            data.update(
                state_update=_versioned('InstanceStateUpdatePayload', '1.0', {
                    'old_state': record['old_vm_state'],
                    'state': record['vm_state'],
                    'old_task_state': record.get('old_task_state'),
                    'new_task_state': record['task_state']}),
                audit_period=_versioned('AuditPeriodPayload', '1.0', {
                    'audit_period_beginning': _api_time(
                        record['created'] - record['created'] % 86400),
                    'audit_period_ending': _api_time(time.time())}),
                bandwidth=[], old_display_name=None, tags=[])
            return _versioned('InstanceUpdatePayload', '1.8', data)
        data['fault'] = None
        if event_type.startswith('instance.create.'):
            data.update(keypairs=[], tags=[],
                        trusted_image_certificates=None,
                        instance_name=f'instance-{record["id"][:8]}')
            return _versioned('InstanceCreatePayload', '1.11', data)
        return _versioned('InstanceActionPayload', '1.7', data)

    def emit_instance_update(self, server_id: str,
                             event_type: str = 'instance.update') -> None:
        """Send an ``instance.*`` notification about a server.

        The publisher is the nova-compute of the server's host; an
        ``*.error`` event goes out at priority error, the rest at info.
        """
        notifier = self._require_notifier()
        payload = self.instance_payload(server_id, event_type)
        host = payload['nova_object.data']['host']
        prepared = notifier.prepare(publisher_id=f'nova-compute:{host}')
        if event_type.endswith('.error'):
            prepared.error({}, event_type, payload)
        else:
            prepared.info({}, event_type, payload)


class NovaStandInProcess:
    """A :class:`NovaStandIn` in a process of its own.

    Nova runs on other machines than the inspector; the benchmark runs its
    stand-in this way so that answering the controller's calls does not
    compete with the chain under test for the GIL. It is set up once, from
    ``servers``, and is then only reached over HTTP.

    :param servers: ``(id, project_id, host, name)`` of every server
    :param idle: run it on the CPU nothing else wants (see
        :class:`doctor_plugin.testing.childproc.ChildServer`)
    """

    def __init__(self, servers: typing.Iterable[tuple[str, str, str, str]],
                 max_version: str = '2.96', idle: bool = False) -> None:
        self._servers = [list(server) for server in servers]
        self._idle = idle
        self._max_version = max_version
        self._dir: tempfile.TemporaryDirectory | None = None
        self._child: childproc.ChildServer | None = None
        self.url = ''
        self.compute_url = ''

    def start(self) -> NovaStandInProcess:
        self._dir = tempfile.TemporaryDirectory(prefix='doctor-nova-')
        path = os.path.join(self._dir.name, 'servers.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self._servers, f)
        self._child = childproc.ChildServer(
            'doctor_plugin.testing.nova',
            ['--servers-file', path, '--max-version', self._max_version],
            what='the Nova stand-in process', idle=self._idle)
        try:
            ready = self._child.start()
        except BaseException:
            self.stop()
            raise
        self.url, self.compute_url = ready['url'], ready['compute_url']
        return self

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._child = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _load_servers(path: str) -> list[tuple[str, str, str, str]]:
    """Servers from a JSON list of objects or of 4-item lists."""
    with open(path, encoding='utf-8') as f:
        entries = json.load(f)
    servers = []
    for entry in entries:
        if isinstance(entry, dict):
            servers.append((entry['id'], entry['project_id'], entry['host'],
                            entry.get('name', '')))
        else:
            server_id, project_id, host, name = entry
            servers.append((server_id, project_id, host, name))
    return servers


def main(argv: list[str] | None = None) -> None:
    """Serve a Nova stand-in until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog='python -m doctor_plugin.testing.nova',
        description='A local stand-in for Nova\'s compute API.')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0,
                        help='port to listen on (0: a free one)')
    parser.add_argument('--servers-file',
                        help='JSON list of servers: objects with id, '
                             'project_id, host, name, or [id, project_id, '
                             'host, name] lists')
    parser.add_argument('--token', help='require this X-Auth-Token')
    parser.add_argument('--max-version', default='2.96')
    parser.add_argument('--transport-url',
                        help='send versioned notifications on this '
                             'oslo.messaging transport')
    args = parser.parse_args(argv)

    nova = NovaStandIn(max_version=args.max_version, token=args.token,
                       host=args.host, port=args.port)
    if args.servers_file:
        nova.add_servers(_load_servers(args.servers_file))
    if args.transport_url:
        nova.enable_notifications(args.transport_url)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    nova.start()
    sys.stdout.write(json.dumps({'url': nova.url,
                                 'compute_url': nova.compute_url}) + '\n')
    sys.stdout.flush()
    try:
        while not done.wait(1):
            pass
    finally:
        nova.stop()
        messaging.cleanup()


if __name__ == '__main__':
    main()
