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

"""The one HTTP client layer: kept-alive connections, our own errors.

Every HTTP request doctor_plugin makes on the notification path (a
webhook POST, a monitor's report to the inspector) goes through a
:class:`Client`:

* straight to the server, over kept-alive :mod:`http.client` connections
  of its own (:class:`ConnectionPool`), which cost half the CPU per POST
  of urllib3's pool and retry machinery: a rack's thousands of alarms
  pay it;
* through a proxy from the environment (``*_proxy``, ``no_proxy``),
  over urllib3's proxy managers, whose failures are raised as ours too.

Failures are :class:`HTTPError` subclasses. Each keeps, as ``name``, the
name requests gave that failure (``ConnectionError``, ``ReadTimeout``,
``SSLError``...), which operators and their log searches know;
:func:`describe` and :func:`advice` word them for a log line or an error.
The client makes one attempt per call: callers retry with
:func:`doctor_plugin.common.retry.call` on :attr:`HTTPError.retryable`.

keystoneauth's requests session (the Nova client) stays on requests:
:class:`EnvironmentCachingSession` is the session it is given.
"""

from __future__ import annotations

import collections
import dataclasses
import http.client
import os
import re
import select
import socket
import ssl
import threading
import typing
from urllib import parse as urlparse

import requests
from requests import utils as requests_utils
import urllib3
from urllib3 import exceptions as urllib3_exc

from doctor_plugin import exceptions


class HTTPError(Exception):
    """A request that got no answer.

    :ivar name: requests' name for the failure, kept in messages
    :ivar retryable: whether the request surely did not reach the
        server, so that another attempt cannot repeat it
    """

    name = 'ConnectionError'
    retryable = False


class ConnectFailed(HTTPError):
    """No connection could be opened (refused, unreachable, DNS)."""

    retryable = True


class ConnectTimeout(ConnectFailed):
    """No connection within the timeout."""

    name = 'ConnectTimeout'


class ReadTimeout(HTTPError):
    """Connected and sent, but no response within the timeout.

    Not retryable: the server may have acted on the request.
    """

    name = 'ReadTimeout'


class TLSError(HTTPError):
    """The TLS handshake failed (certificate, protocol)."""

    name = 'SSLError'


class ProxyError(HTTPError):
    """The proxy from the environment could not be used."""

    name = 'ProxyError'
    retryable = True


class ConnectionAborted(HTTPError):
    """The connection was cut while the request was sent or answered."""


def describe(exc: HTTPError, timeout: float) -> str:
    """``name: cause`` of a failed request, for a log line or an error.

    :param timeout: the request's timeout, for the timeout messages
    """
    if isinstance(exc, ConnectTimeout):
        return f'no connection within {timeout}s'
    if isinstance(exc, ReadTimeout):
        return f'no response within {timeout}s'
    return f'{exc.name}: {exc}'


def advice(exc: HTTPError, server: str = 'the server',
           tls_fix: str = 'its CA bundle',
           timeout_fix: str = 'raise the timeout') -> str:
    """What to check after a failed request, as a sentence.

    :param server: what was called ("the consumer")
    :param tls_fix: how to fix a certificate failure (an option name)
    :param timeout_fix: how to allow more time (an option name)
    """
    if isinstance(exc, TLSError):
        return f"Check {server}'s certificate and {tls_fix}."
    if isinstance(exc, (ConnectTimeout, ReadTimeout)):
        return (f'Check that {server} is up and answers quickly, or '
                f'{timeout_fix}.')
    return (f'Check that {server} is running and that its host and port '
            f'are reachable from this host.')


_CHARSET = re.compile(r'charset=["\']?([\w.:-]+)', re.IGNORECASE)


class Response(typing.NamedTuple):
    """What a request got back."""

    status: int
    reason: str
    headers: typing.Any
    data: bytes

    def text(self) -> str:
        """The body, decoded by its Content-Type's charset (else UTF-8)."""
        charset = _CHARSET.search(self.headers.get('Content-Type', ''))
        encoding = charset.group(1) if charset else 'utf-8'
        try:
            return self.data.decode(encoding, errors='replace')
        except LookupError:
            return self.data.decode('utf-8', errors='replace')

    def excerpt(self, limit: int = 200) -> str:
        """`` (the body's start)`` on one line, or '' without a body."""
        text = ' '.join(self.text().split())
        if not text:
            return ''
        return f' ({text[:limit]}{"..." if len(text) > limit else ""})'


@dataclasses.dataclass(frozen=True, slots=True)
class TLSSettings:
    """How to verify an https:// server, and the certificate to show.

    :ivar verify: True (the CA bundle requests used: ``REQUESTS_CA_BUNDLE``,
        ``CURL_CA_BUNDLE`` or certifi's), False, or a CA file or directory
    :ivar cert: a client certificate file (which may hold the key), or
        (certificate, key)
    :ivar cert_option: what to name in an error about the certificate
    :ivar system_ca: with ``verify`` True, the system's CA store instead
        of requests' bundle (as urllib3 verifies)
    """

    verify: bool | str = True
    cert: str | tuple[str, str] | None = None
    cert_option: str = 'client certificate'
    system_ca: bool = False

    def urllib3_kwargs(self) -> dict[str, typing.Any]:
        """These settings as a urllib3 pool's keyword arguments."""
        kwargs: dict[str, typing.Any] = {}
        if self.verify is False:
            kwargs['cert_reqs'] = 'CERT_NONE'
        else:
            kwargs['cert_reqs'] = 'CERT_REQUIRED'
            location = self.verify
            if location is True and not self.system_ca:
                location = (os.environ.get('REQUESTS_CA_BUNDLE')
                            or os.environ.get('CURL_CA_BUNDLE')
                            or requests_utils.DEFAULT_CA_BUNDLE_PATH)
            if location is not True:
                kwargs['ca_cert_dir' if os.path.isdir(location)
                       else 'ca_certs'] = location
        if isinstance(self.cert, tuple):
            kwargs['cert_file'], kwargs['key_file'] = self.cert
        elif self.cert:
            kwargs['cert_file'] = self.cert
        return kwargs

    def context(self) -> ssl.SSLContext:
        """These settings as an SSL context (TLS 1.2 at least).

        :raises ConfigurationError: if the client certificate or its key
            cannot be loaded
        """
        kwargs = self.urllib3_kwargs()
        context = ssl.create_default_context(
            cafile=kwargs.get('ca_certs'), capath=kwargs.get('ca_cert_dir'))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if kwargs['cert_reqs'] == 'CERT_NONE':
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if 'cert_file' in kwargs:
            try:
                context.load_cert_chain(kwargs['cert_file'],
                                        kwargs.get('key_file'))
            except (OSError, ssl.SSLError) as exc:
                raise exceptions.ConfigurationError(
                    self.cert_option, kwargs['cert_file'],
                    f'cannot load the client certificate and key: {exc}'
                ) from None
        return context


def default_headers(url: str) -> dict[str, str]:
    """The headers requests sent to ``url``, so servers see no change.

    With Basic auth from ``~/.netrc`` or, failing that, the URL's
    userinfo.
    """
    headers = {
        'User-Agent': requests_utils.default_user_agent(),
        'Accept-Encoding': urllib3.util.make_headers(
            accept_encoding=True)['accept-encoding'],
        'Accept': '*/*',
        'Connection': 'keep-alive',
    }
    parsed = urlparse.urlsplit(url)
    auth = requests_utils.get_netrc_auth(url)
    if not auth and (parsed.username or parsed.password):
        auth = (urlparse.unquote(parsed.username or ''),
                urlparse.unquote(parsed.password or ''))
    if auth:
        headers['Authorization'] = urllib3.util.make_headers(
            basic_auth=f'{auth[0]}:{auth[1]}')['authorization']
    return headers


class ConnectionPool:
    """Kept-alive http.client connections to one server.

    Idle connections are kept, at most ``maxsize`` of them; when all are
    busy a new one is opened rather than waited for (urllib3's
    ``block=False``). One found closed by the server while idle is
    replaced before it is used, as urllib3 does.
    """

    def __init__(self, scheme: str, host: str, port: int | None,
                 timeout: float, context: ssl.SSLContext | None,
                 maxsize: int) -> None:
        self._host = host
        self._port = port or (443 if scheme == 'https' else 80)
        self._timeout = timeout
        self._context = context
        self._maxsize = maxsize
        self._idle: collections.deque[http.client.HTTPConnection] = (
            collections.deque())

    def _connect(self) -> http.client.HTTPConnection:
        if self._context is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout,
                context=self._context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port,
                                              timeout=self._timeout)
        try:
            conn.connect()
        except (ssl.SSLError, ssl.CertificateError) as exc:
            conn.close()
            raise TLSError(str(exc)) from exc
        except TimeoutError as exc:
            conn.close()
            raise ConnectTimeout(
                f'Connection to {self._host} timed out. (connect '
                f'timeout={self._timeout})') from exc
        except OSError as exc:
            conn.close()
            raise ConnectFailed(
                f'Failed to establish a new connection: {exc}') from exc
        # Headers and body leave in one send; without this the next
        # request could wait for the server's delayed ACK.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _checkout(self) -> http.client.HTTPConnection:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return self._connect()
            if not _dropped(conn):
                return conn
            conn.close()

    def request(self, method: str, uri: str, body: bytes,
                headers: dict[str, str]) -> Response:
        """One request; the response, read whole.

        :raises HTTPError: if it got no answer
        """
        conn = self._checkout()
        try:
            conn.request(method, uri, body, headers)
            raw = conn.getresponse()
            data = raw.read()
        except TimeoutError as exc:
            conn.close()
            raise ReadTimeout(f'Read timed out. (read timeout='
                              f'{self._timeout})') from exc
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            raise ConnectionAborted(
                f'Connection aborted: {type(exc).__name__}: {exc}') from exc
        if raw.will_close or len(self._idle) >= self._maxsize:
            conn.close()
        else:
            self._idle.append(conn)
        return Response(raw.status, raw.reason, raw.headers, data)

    def close(self) -> None:
        while self._idle:
            try:
                self._idle.pop().close()
            except IndexError:
                break

    def __len__(self) -> int:
        return len(self._idle)


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed an idle connection (readable: EOF)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``, or None.

    As requests reads them: ``HTTP(S)_PROXY``, ``ALL_PROXY`` and
    ``NO_PROXY``.
    """
    proxy = requests_utils.select_proxy(
        url, requests_utils.get_environ_proxies(url))
    if not proxy:
        return None
    return requests_utils.prepend_scheme_if_needed(proxy, 'http')


def _from_urllib3(exc: Exception) -> HTTPError:
    """urllib3's failure as ours, its message without urllib3's noise."""
    reason = (exc.reason if isinstance(exc, urllib3_exc.MaxRetryError)
              and exc.reason is not None else exc)
    text = str(reason)
    if text.startswith(('HTTPConnection(', 'HTTPSConnection(')):
        text = text.partition('): ')[2] or text
    if isinstance(reason, urllib3_exc.ProxyError):
        return ProxyError(text)
    if isinstance(reason, urllib3_exc.SSLError):
        return TLSError(text)
    if isinstance(reason, urllib3_exc.NewConnectionError):
        return ConnectFailed(text)
    if isinstance(reason, urllib3_exc.ConnectTimeoutError):
        return ConnectTimeout(text)
    if isinstance(reason, urllib3_exc.ReadTimeoutError):
        return ReadTimeout(text)
    if isinstance(reason, OSError):
        return ConnectFailed(text)
    return ConnectionAborted(text)


class _ProxiedPool:
    """Requests through a proxy, over urllib3's proxy managers."""

    def __init__(self, url: str, proxy: str, timeout: float,
                 tls: TLSSettings | None, maxsize: int) -> None:
        pool_kw: dict[str, typing.Any] = {
            'num_pools': 10, 'maxsize': maxsize, 'block': False}
        if tls is not None:
            pool_kw.update(tls.urllib3_kwargs())
        parsed_proxy = urllib3.util.parse_url(proxy)
        # Url.netloc leaves the userinfo out.
        safe_proxy = f'{parsed_proxy.scheme}://{parsed_proxy.netloc or ""}'
        if not parsed_proxy.host:
            raise exceptions.ConfigurationError(
                'proxy from the environment', safe_proxy,
                'has no host; fix the *_proxy variable or add this host '
                'to no_proxy')
        username, password = requests_utils.get_auth_from_url(proxy)
        #: Through a forwarding proxy (http:// via an HTTP proxy) the
        #: request line carries the absolute URL; otherwise (a tunnel)
        #: the one pool of the target is used directly.
        self.forwarded = False
        if proxy.lower().startswith('socks'):
            try:
                from urllib3.contrib import socks
            except ImportError:
                raise exceptions.ConfigurationError(
                    'proxy from the environment', safe_proxy,
                    'is a SOCKS proxy, which needs PySocks; install it or '
                    'add this host to no_proxy') from None
            self.manager: urllib3.PoolManager = socks.SOCKSProxyManager(
                proxy, username=username, password=password, **pool_kw)
        else:
            proxy_headers = {}
            if username:
                proxy_headers['Proxy-Authorization'] = (
                    urllib3.util.make_headers(
                        proxy_basic_auth=f'{username}:{password}'
                    )['proxy-authorization'])
            self.manager = urllib3.ProxyManager(
                proxy, proxy_headers=proxy_headers, **pool_kw)
            self.forwarded = urlparse.urlsplit(url).scheme == 'http'
        self._url = url
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._lock = threading.Lock()

    def request(self, method: str, uri: str, body: bytes,
                headers: dict[str, str]) -> Response:
        try:
            if self.forwarded:
                raw = self.manager.urlopen(
                    method, self._url, body=body, headers=headers,
                    retries=False, timeout=self._timeout, redirect=False)
            else:
                pool = self._pool
                if pool is None:
                    pool = self._pool = self.manager.connection_from_url(
                        self._url)
                raw = pool.urlopen(
                    method, uri, body=body, headers=headers, retries=False,
                    timeout=self._timeout, redirect=False)
        except (urllib3_exc.HTTPError, OSError) as exc:
            raise _from_urllib3(exc) from exc
        return Response(raw.status, raw.reason or '', raw.headers, raw.data)

    def close(self) -> None:
        # A later request opens a new pool.
        self._pool = None
        self.manager.clear()


class Client:
    """Requests to one URL's server: direct, or through the proxy.

    :param url: the target, without userinfo (what a proxy is asked for)
    :param timeout: seconds to connect, and again to get the response
    :param tls: for https://, how to verify the server
    :param pool_size: kept-alive connections (requests in parallel
        without opening new connections)
    :param use_proxy: whether the environment's proxy settings apply
        (read once; changes need a restart)
    """

    def __init__(self, url: str, timeout: float,
                 tls: TLSSettings | None = None, pool_size: int = 10,
                 use_proxy: bool = True) -> None:
        parsed = urlparse.urlsplit(url)
        self.url = url
        self.timeout = timeout
        self.request_uri = urllib3.util.parse_url(url).request_uri
        proxy = environment_proxy(url) if use_proxy else None
        #: The direct pool, or None through a proxy.
        self.pool: ConnectionPool | None = None
        self._proxied: _ProxiedPool | None = None
        if proxy is None:
            self.pool = ConnectionPool(
                parsed.scheme, parsed.hostname or '', parsed.port, timeout,
                (tls or TLSSettings()).context()
                if parsed.scheme == 'https' else None, pool_size)
            self._transport: typing.Any = self.pool
        else:
            self._proxied = _ProxiedPool(
                url, proxy, timeout,
                (tls or TLSSettings()) if parsed.scheme == 'https'
                else None, pool_size)
            self._transport = self._proxied

    @property
    def proxy_manager(self) -> urllib3.PoolManager | None:
        """urllib3's proxy manager, when a proxy applies."""
        return self._proxied.manager if self._proxied else None

    def request(self, method: str, body: bytes, headers: dict[str, str],
                uri: str | None = None) -> Response:
        """One attempt; the response, whatever its status.

        :param uri: another path and query on the same server
        :raises HTTPError: if it got no answer
        """
        return self._transport.request(method, uri or self.request_uri,
                                       body, headers)

    def close(self) -> None:
        """Close the kept-alive connections; a later request reopens."""
        self._transport.close()


class EnvironmentCachingSession(requests.Session):
    """:class:`requests.Session`, environment settings cached per host.

    With ``trust_env`` (the default), requests reads the proxy settings
    (``*_proxy``, ``no_proxy``), ``REQUESTS_CA_BUNDLE`` and ``~/.netrc``
    again for every request: under cProfile a quarter of a small
    request's CPU time. The inspector sends hundreds of requests right
    after a fault, so it reads them once per scheme, host and request
    settings instead; changes to the environment after the first request
    to a host are not seen until the process restarts.
    """

    def __init__(self) -> None:
        super().__init__()
        self._env_cache: dict[typing.Hashable, typing.Any] = {}
        self._env_lock = threading.Lock()

    def merge_environment_settings(self, url, proxies, stream, verify,
                                   cert):
        parts = urlparse.urlsplit(url)
        key = (parts.scheme, parts.netloc,
               tuple(sorted((proxies or {}).items())), stream,
               verify if isinstance(verify, (bool, str, type(None)))
               else id(verify),
               tuple(cert) if isinstance(cert, (list, tuple)) else cert)
        with self._env_lock:
            settings: typing.Any = self._env_cache.get(key)
        if settings is None:
            settings = super().merge_environment_settings(
                url, proxies, stream, verify, cert)
            with self._env_lock:
                self._env_cache[key] = settings
        # Callers may change what they get: each has its own copy.
        return dict(settings, proxies=dict(settings['proxies']))
