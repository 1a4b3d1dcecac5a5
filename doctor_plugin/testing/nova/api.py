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

"""The Nova stand-in's HTTP side: the server, its routes and handlers.

:class:`NovaAPI` answers Nova's compute API v2.1 over
``http.server``: version discovery, microversion negotiation, token
checks, the outages and failures injected by the test, and the routes
(``os-services``, ``servers``, ``os-resetState``) over the state of
:class:`doctor_plugin.testing.nova.model.NovaModel`.
"""

from __future__ import annotations

import collections
import http.server
import json
import re
import socket
import threading
import time
import typing
import urllib.parse
import uuid

from oslo_log import log as logging

from doctor_plugin.testing.nova import model
from doctor_plugin.testing.nova import notifications

LOG = logging.getLogger(__name__)

_SERVER_PATH = re.compile(r'^/v2\.1/servers/([^/]+)(/action)?$')
_SERVICE_PATH = re.compile(r'^/v2\.1/os-services/([^/]+)$')
_BOOLEANS = {'true': True, '1': True, 'on': True, 'yes': True,
             'false': False, '0': False, 'off': False, 'no': False}


class _Fault(Exception):
    """An error answer in Nova's format."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _fault_body(status: int, message: str) -> dict:
    name = model.FAULT_NAMES.get(status, 'computeFault')
    return {name: {'code': status, 'message': message}}


def _boolean(value: typing.Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    raise _Fault(400, f'Invalid input for field/attribute {field}. Value: '
                      f'{value!r}. {value!r} is not one of the boolean '
                      f'values')


def _required_text(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise _Fault(400, f"Invalid input for field/attribute body. "
                          f"Value: {json.dumps(body)}. '{field}' "
                          f"is a required property")
    return value


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Headers and body go out in separate writes; with Nagle's algorithm
    # the body would wait for the client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    server: NovaHTTPServer

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


class NovaHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops the SYNs of a burst of clients.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int],
                 standin: NovaAPI) -> None:
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


class NovaAPI(notifications.NovaNotifications):
    """The routes of ``NovaStandIn`` (a part of it), over its model.

    A change a route makes is sent as Nova's notification, so this part
    builds on the notifications part.
    """

    token: str | None
    page_limit: int
    _latency: float
    _failures: collections.deque[list]
    _outage: str | None
    _released: threading.Event
    _stopping: bool

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
        reply: dict | bytes | None
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
            if method == 'GET' and path in ('/', model.API_PREFIX,
                                            model.API_PREFIX + '/'):
                status, reply = self._discovery(path)
            else:
                self._authenticate(handler, path)
                if path.startswith(model.API_PREFIX + '/'):
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
            self.calls.append(model.Call(
                method, path, query,
                model.version_text(version) if version else None, body, status,
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
            negotiated = model.parse_version(requested)
        except ValueError as exc:
            raise _Fault(400, str(exc)) from None
        if not self.min_version <= negotiated <= self.max_version:
            raise _Fault(406, f'Version {requested} is not supported by the '
                              f'API. Minimum is '
                              f'{model.version_text(self.min_version)} and '
                              f'maximum is '
                              f'{model.version_text(self.max_version)}.')
        return negotiated

    @staticmethod
    def _version_headers(version: tuple[int, int]) -> dict[str, str]:
        text = model.version_text(version)
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
        if version >= model.SERVICE_UUID_VERSION:
            return self._update_service_by_uuid(service_id, body, version)
        if service_id == 'force-down' and version >= model.FORCED_DOWN_VERSION:
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
            if record['binary'] != model.COMPUTE_BINARY:
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
        host = _required_text(body, 'host')
        binary = _required_text(body, 'binary')
        if binary != model.COMPUTE_BINARY:
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
            record['status'] = model.VM_STATE_STATUS[state]
            record['task_state'] = None
            record['updated'] = time.time()
            self._server_json.pop(server_id, None)
        if self._notifier is not None:
            self.emit_instance_update(server_id)
        return 202, None
