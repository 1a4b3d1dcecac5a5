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

"""A local stand-in for Keystone: the identity API keystonemiddleware needs.

:class:`KeystoneStandIn` is a real HTTP server on loopback that speaks the
part of Keystone's identity API v3 that keystonemiddleware's
``auth_token`` (through keystoneauth1 and keystoneclient) uses to
validate the tokens sent to the inspector, in Keystone's wire format:

* version discovery at ``/`` (300, every version) and ``/v3``;
* ``POST /v3/auth/tokens`` with the ``password`` method: the middleware's
  own service token, in ``X-Subject-Token``, with a catalog naming this
  server as the identity service;
* ``GET /v3/auth/tokens``: validation of the token in ``X-Subject-Token``
  (the caller's own in ``X-Auth-Token``), 404 for a token it never issued
  or revoked.

Tests issue the users' tokens with :meth:`KeystoneStandIn.issue_token`,
with the roles and project they need; every request answered is kept in
:attr:`KeystoneStandIn.calls`.
"""

from __future__ import annotations

import dataclasses
import datetime
import http.server
import json
import secrets
import socket
import threading
import time
import typing
import uuid

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

API_PREFIX = '/v3'
#: The identity API version the stand-in announces.
VERSION = 'v3.14'
DEFAULT_DOMAIN = {'id': 'default', 'name': 'Default'}
INTERFACES = ('public', 'internal', 'admin')


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One request the stand-in answered (no body, no token kept)."""

    method: str
    path: str
    status: int
    at: float = dataclasses.field(default_factory=time.time)


@dataclasses.dataclass(slots=True)
class _Token:
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: tuple[str, ...]
    expires_at: datetime.datetime
    issued_at: datetime.datetime


class _Error(Exception):
    """An error answer in Keystone's format."""

    TITLES = {400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found',
              405: 'Method Not Allowed'}

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict:
        return {'error': {'code': self.status, 'message': self.message,
                          'title': self.TITLES.get(self.status, 'Error')}}


def _time(when: datetime.datetime) -> str:
    return when.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True
    server: _KeystoneHTTPServer

    def _dispatch(self) -> None:
        self.server.standin._serve(self)

    do_GET = do_POST = do_HEAD = do_DELETE = _dispatch

    def log_message(self, format: str, *args: typing.Any) -> None:
        LOG.debug('keystone stand-in: ' + format, *args)


class _KeystoneHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int],
                 standin: KeystoneStandIn) -> None:
        self.standin = standin
        super().__init__(address, _Handler)


class KeystoneStandIn:
    """Keystone's identity API v3 on ``host:port`` (port 0 picks one).

    :param service_user: the user the middleware authenticates as
        (``[keystone_authtoken] username``)
    :param service_password: its password (generated if not given)
    :param service_project: its project (``project_name``)
    :param region: the catalog's region

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, service_user: str = 'doctor',
                 service_password: str | None = None,
                 service_project: str = 'service',
                 region: str = 'RegionOne',
                 host: str = '127.0.0.1', port: int = 0) -> None:
        self.service_user = service_user
        self.service_password = service_password or secrets.token_hex(16)
        self.service_project = service_project
        self.region = region
        self.calls: list[Call] = []
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._server: _KeystoneHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        """The root URL (version discovery)."""
        if not self._port:
            raise RuntimeError('the Keystone stand-in has no port yet: call '
                               'start() first')
        return f'http://{self._host}:{self._port}'

    @property
    def identity_url(self) -> str:
        """The v3 endpoint: ``auth_url`` and the catalog's identity URL."""
        return self.url + API_PREFIX

    def start(self) -> KeystoneStandIn:
        """Listen and serve in a daemon thread."""
        server = _KeystoneHTTPServer((self._host, self._port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={'poll_interval': 0.05},
            name='doctor-keystone-standin', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> KeystoneStandIn:
        return self.start()

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.stop()

    def authtoken_options(self) -> dict[str, str]:
        """The ``[keystone_authtoken]`` options that point here."""
        return {'auth_type': 'password',
                'auth_url': self.identity_url,
                'www_authenticate_uri': self.identity_url,
                'username': self.service_user,
                'password': self.service_password,
                'project_name': self.service_project,
                'user_domain_name': DEFAULT_DOMAIN['name'],
                'project_domain_name': DEFAULT_DOMAIN['name'],
                'region_name': self.region}

    # -- tokens ------------------------------------------------------------

    def issue_token(self, roles: typing.Iterable[str],
                    project_id: str = 'doctor-monitors',
                    user_id: str | None = None,
                    expires_in: float = 3600.0) -> str:
        """A new token with ``roles`` on ``project_id``; its id."""
        now = datetime.datetime.now(datetime.timezone.utc)
        user_id = user_id or f'user-{uuid.uuid4().hex[:8]}'
        token = _Token(user_id=user_id, user_name=user_id,
                       project_id=project_id, project_name=project_id,
                       roles=tuple(roles),
                       expires_at=now + datetime.timedelta(
                           seconds=expires_in),
                       issued_at=now)
        token_id = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token_id] = token
        return token_id

    def revoke(self, token_id: str) -> None:
        """Forget a token: validating it answers 404 from now on."""
        with self._lock:
            self._tokens.pop(token_id, None)

    def _valid(self, token_id: str | None) -> _Token | None:
        if not token_id:
            return None
        with self._lock:
            token = self._tokens.get(token_id)
        now = datetime.datetime.now(datetime.timezone.utc)
        if token is None or token.expires_at <= now:
            return None
        return token

    def _catalog(self) -> list[dict]:
        return [{'id': 'identity', 'type': 'identity', 'name': 'keystone',
                 'endpoints': [
                     {'id': f'identity-{interface}', 'interface': interface,
                      'region': self.region, 'region_id': self.region,
                      'url': self.identity_url}
                     for interface in INTERFACES]}]

    def _token_body(self, token: _Token) -> dict:
        return {'token': {
            'methods': ['password'],
            'user': {'id': token.user_id, 'name': token.user_name,
                     'domain': DEFAULT_DOMAIN,
                     'password_expires_at': None},
            'project': {'id': token.project_id, 'name': token.project_name,
                        'domain': DEFAULT_DOMAIN},
            'roles': [{'id': f'role-{name}', 'name': name}
                      for name in token.roles],
            'is_domain': False,
            'catalog': self._catalog(),
            'audit_ids': [secrets.token_urlsafe(16)],
            'expires_at': _time(token.expires_at),
            'issued_at': _time(token.issued_at)}}

    # -- HTTP --------------------------------------------------------------

    def _version(self) -> dict:
        return {'id': VERSION, 'status': 'stable',
                'updated': '2020-04-07T00:00:00Z',
                'links': [{'rel': 'self', 'href': self.identity_url + '/'}],
                'media-types': [{
                    'base': 'application/json',
                    'type': 'application/vnd.openstack.identity-v3+json'}]}

    def _serve(self, handler: _Handler) -> None:
        path = handler.path.partition('?')[0].rstrip('/') or '/'
        length = int(handler.headers.get('Content-Length') or 0)
        raw = handler.rfile.read(length) if length else b''
        headers: dict[str, str] = {}
        try:
            status, reply = self._route(handler.command, path, handler,
                                        raw, headers)
        except _Error as error:
            status, reply = error.status, error.body()
            if status == 401:
                headers['WWW-Authenticate'] = (
                    f'Keystone uri="{self.identity_url}"')
        with self._lock:
            self.calls.append(Call(handler.command, path, status))
        data = json.dumps(reply).encode()
        try:
            handler.send_response(status)
            handler.send_header('Content-Type', 'application/json')
            handler.send_header('Content-Length', str(len(data)))
            handler.send_header('x-openstack-request-id',
                                f'req-{uuid.uuid4()}')
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if handler.command != 'HEAD':
                handler.wfile.write(data)
        except OSError:
            handler.close_connection = True

    def _route(self, method: str, path: str, handler: _Handler,
               raw: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        if path == '/' and method in ('GET', 'HEAD'):
            return 300, {'versions': {'values': [self._version()]}}
        if path == API_PREFIX and method in ('GET', 'HEAD'):
            return 200, {'version': self._version()}
        if path != API_PREFIX + '/auth/tokens':
            raise _Error(404, f'The resource could not be found: {path}')
        if method == 'POST':
            return self._authenticate(raw, headers)
        if method in ('GET', 'HEAD'):
            if self._valid(handler.headers.get('X-Auth-Token')) is None:
                raise _Error(401, 'The request you have made requires '
                                  'authentication.')
            subject = handler.headers.get('X-Subject-Token', '')
            token = self._valid(subject)
            if token is None:
                # Keystone's message names no token: neither does ours.
                raise _Error(404, 'Could not find token.')
            headers['X-Subject-Token'] = subject
            return 200, self._token_body(token)
        raise _Error(405, f'{method} is not allowed on {path}')

    def _authenticate(self, raw: bytes,
                      headers: dict[str, str]) -> tuple[int, dict]:
        try:
            identity = json.loads(raw)['auth']['identity']
            methods = identity['methods']
            user = identity['password']['user']
        except (ValueError, KeyError, TypeError):
            raise _Error(400, 'Expecting to find auth.identity with the '
                              'password method in the request body.'
                         ) from None
        if methods != ['password'] or (
                user.get('name') != self.service_user
                or not secrets.compare_digest(
                    str(user.get('password', '')).encode(),
                    self.service_password.encode())):
            raise _Error(401, 'The request you have made requires '
                              'authentication.')
        token_id = self.issue_token(['service', 'admin'],
                                    project_id=self.service_project,
                                    user_id=self.service_user)
        headers['X-Subject-Token'] = token_id
        with self._lock:
            token = self._tokens[token_id]
        return 201, self._token_body(token)
