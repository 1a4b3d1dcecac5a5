"""POST Aodh's alarm webhook body to a URL: ``http://`` and ``https://``.

A consumer (a VNF manager) that already takes Aodh's alarm actions takes
these unchanged. With an alarm, its transition is posted once. Without one
(events straight from a pipeline sink) each event is posted as an alarm
synthesised the way Aodh's event evaluator would report it.

Query parameters starting with ``doctor-`` set options for this URL only and
are not sent: ``doctor-ssl-verify=false``, ``doctor-timeout=2`` (as Aodh's
``aodh-alarm-ssl-verify``). Other query parameters are kept.
"""

from __future__ import annotations

import collections
import datetime
import http.client
import json
import os
import re
import select
import socket
import ssl
import time
import typing
from urllib import parse as urlparse
import uuid

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import strutils
from requests import utils as requests_utils
import urllib3
from urllib3 import exceptions as urllib3_exc
from urllib3.util import retry as urllib3_retry

from doctor_plugin.common import httperrors
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import base
from doctor_plugin import signing

LOG = logging.getLogger(__name__)

#: Aodh's alarm severities.
SEVERITIES = ('low', 'moderate', 'critical')

OPTS = [
    cfg.FloatOpt('webhook_timeout',
                 default=5.0,
                 min=0.1,
                 help='Seconds to wait for a webhook consumer to accept the '
                      'connection, and again for its response. Per URL: '
                      'doctor-timeout=2.'),
    cfg.IntOpt('webhook_max_retries',
               default=2,
               min=0,
               help='How many times to retry a webhook POST that could not '
                    'connect or got a 5xx answer, with a short backoff. '
                    'Consumers can drop duplicates by the X-Doctor-Event-Id '
                    'header. Timed-out responses are not retried.'),
    cfg.BoolOpt('webhook_ssl_verify',
                default=True,
                help='Whether to verify the certificate of https:// webhook '
                     'consumers. Per URL: doctor-ssl-verify=false.'),
    cfg.StrOpt('webhook_ca_bundle',
               help='Path of a CA bundle to verify https:// webhook '
                    'consumers with, instead of the system\'s.'),
    cfg.StrOpt('webhook_client_cert',
               help='Path of a client certificate (PEM) to present to '
                    'https:// webhook consumers; it may hold the key too.'),
    cfg.StrOpt('webhook_client_key',
               help='Path of the private key of webhook_client_cert, when '
                    'the certificate file does not hold it.'),
    cfg.IntOpt('webhook_pool_size',
               default=10,
               min=1,
               help='Connections each webhook notifier keeps open to its '
                    'consumer, i.e. how many POSTs can run in parallel '
                    'without opening new connections.'),
    cfg.StrOpt('webhook_signing_key',
               secret=True,
               help='Key to sign webhook bodies with (HMAC-SHA256). Each '
                    'POST then carries X-Doctor-Timestamp (Unix seconds) '
                    'and X-Doctor-Signature: sha256=<hex of HMAC(key, '
                    'timestamp + "." + body)>, so a consumer can reject '
                    'forged, altered and replayed alarms. Empty: not '
                    'signed.'),
    cfg.StrOpt('default_severity',
               default='critical',
               choices=SEVERITIES,
               help='Severity of alarms synthesised from events whose '
                    '"severity" trait is not one of Aodh\'s.'),
]

#: The per-URL parameters, by name without the ``doctor-`` prefix.
URL_PARAMS = ('ssl-verify', 'timeout')
_URL_PARAM_PREFIX = 'doctor-'

#: Statuses worth retrying: the consumer or a proxy in front of it failed.
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_RETRY_BACKOFF = 0.1

_CHARSET = re.compile(r'charset=["\']?([\w.:-]+)', re.IGNORECASE)


class WebhookNotifier(base.NotifierBase):
    """Post Aodh alarm webhook bodies over kept-alive connections.

    Straight to the consumer, over http.client connections of its own
    (:class:`_Connections`); through a proxy from the environment, over
    urllib3's proxy managers.
    """

    def __init__(self, conf: cfg.ConfigOpts, url: str) -> None:
        super().__init__(conf, url)
        conf.register_opts(OPTS, group='notifier')
        opts = conf.notifier
        if not self.parsed_url.hostname:
            raise exceptions.ConfigurationError(
                'notifier URL', self.safe_url,
                'has no host; write it as https://host[:port]/path')
        overrides = self._url_overrides()
        #: The URL as posted: without doctor-* parameters or fragment.
        self.target_url = urlparse.urlunsplit(
            self.parsed_url._replace(query=_strip_doctor_params(
                self.parsed_url.query), fragment=''))
        self.timeout = self._parse_timeout(
            overrides.get('timeout'), opts.webhook_timeout)
        self.default_severity = opts.default_severity
        self.verify: bool | str = True
        self.cert: str | tuple[str, str] | None = None
        if self.parsed_url.scheme == 'https':
            self._configure_tls(opts, overrides.get('ssl-verify'))

        self.retries = urllib3_retry.Retry(
            total=opts.webhook_max_retries,
            connect=opts.webhook_max_retries,
            status=opts.webhook_max_retries,
            # A timed-out or cut response may have been acted on, and
            # retrying it multiplies the latency of the alarm. False (not
            # 0) raises the ReadTimeoutError itself, not a MaxRetryError.
            read=False,
            other=0,
            allowed_methods=None,
            status_forcelist=_RETRY_STATUSES,
            backoff_factor=_RETRY_BACKOFF,
            respect_retry_after_header=False,
            raise_on_status=False)
        self._timeout = urllib3.Timeout(connect=self.timeout,
                                        read=self.timeout)
        #: What the POSTs go through: a PoolManager, or a ProxyManager
        #: when the environment's proxy settings apply to this URL.
        self.pool_manager, forwarded = self._make_pool_manager(opts)
        # The target without userinfo: what a forwarding proxy is asked for.
        self._absolute_url = self._stable_url()
        self._request_uri = urllib3.util.parse_url(
            self._absolute_url).request_uri
        # Through a forwarding proxy (http:// via an HTTP proxy) the
        # request line carries the absolute URL and the ProxyManager adds
        # its headers; otherwise the one pool of the target is used
        # directly, which spares a URL parse and a pool lookup per POST.
        self._forwarded = forwarded
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._headers = self._base_headers()
        #: Without a proxy, POSTs go over kept-alive http.client
        #: connections: urllib3's pool and retry machinery doubled the CPU
        #: of a POST (0.5 against 0.25 ms), which a rack's thousands of
        #: alarms pay on the notification path. Through a proxy, urllib3.
        self._direct: _Connections | None = None
        if type(self.pool_manager) is urllib3.PoolManager:
            self._direct = _Connections(
                self.parsed_url.scheme, self.parsed_url.hostname,
                self.parsed_url.port, self.timeout,
                self._ssl_context() if self.parsed_url.scheme == 'https'
                else None, opts.webhook_pool_size)
        self._max_retries = opts.webhook_max_retries
        self._signing_key = (opts.webhook_signing_key or '').encode()

    def _make_pool_manager(self, opts: typing.Any
                           ) -> tuple[urllib3.PoolManager, bool]:
        # requests' defaults, which this notifier used before: ten pools,
        # not blocking when all webhook_pool_size connections are busy.
        pool_kw: dict[str, typing.Any] = {
            'num_pools': 10, 'maxsize': opts.webhook_pool_size,
            'block': False}
        if self.parsed_url.scheme == 'https':
            pool_kw.update(self._tls_pool_kwargs())
        # Read once, as requests did per request: HTTP(S)_PROXY, ALL_PROXY
        # and NO_PROXY; changes need a restart.
        proxy = requests_utils.select_proxy(
            self.target_url, requests_utils.get_environ_proxies(
                self.target_url))
        if not proxy:
            return urllib3.PoolManager(**pool_kw), False
        proxy = requests_utils.prepend_scheme_if_needed(proxy, 'http')
        parsed_proxy = urllib3.util.parse_url(proxy)
        # Url.netloc leaves the userinfo out.
        safe_proxy = f'{parsed_proxy.scheme}://{parsed_proxy.netloc or ""}'
        if not parsed_proxy.host:
            raise exceptions.ConfigurationError(
                'proxy from the environment', safe_proxy,
                'has no host; fix the *_proxy variable or add this host '
                'to no_proxy')
        username, password = requests_utils.get_auth_from_url(proxy)
        if proxy.lower().startswith('socks'):
            try:
                from urllib3.contrib import socks
            except ImportError:
                raise exceptions.ConfigurationError(
                    'proxy from the environment', safe_proxy,
                    'is a SOCKS proxy, which needs PySocks; install it or '
                    'add this host to no_proxy') from None
            return socks.SOCKSProxyManager(
                proxy, username=username, password=password,
                **pool_kw), False
        proxy_headers = {}
        if username:
            proxy_headers['Proxy-Authorization'] = urllib3.util.make_headers(
                proxy_basic_auth=f'{username}:{password}'
            )['proxy-authorization']
        manager = urllib3.ProxyManager(proxy, proxy_headers=proxy_headers,
                                       **pool_kw)
        return manager, self.parsed_url.scheme == 'http'

    def _tls_pool_kwargs(self) -> dict[str, typing.Any]:
        kwargs: dict[str, typing.Any] = {}
        if self.verify is False:
            kwargs['cert_reqs'] = 'CERT_NONE'
        else:
            kwargs['cert_reqs'] = 'CERT_REQUIRED'
            location = self.verify
            if location is True:
                # As requests did: its environment variables, else the
                # certifi bundle it ships with.
                location = (os.environ.get('REQUESTS_CA_BUNDLE')
                            or os.environ.get('CURL_CA_BUNDLE')
                            or requests_utils.DEFAULT_CA_BUNDLE_PATH)
            kwargs['ca_cert_dir' if os.path.isdir(location)
                   else 'ca_certs'] = location
        if isinstance(self.cert, tuple):
            kwargs['cert_file'], kwargs['key_file'] = self.cert
        elif self.cert:
            kwargs['cert_file'] = self.cert
        return kwargs

    def _ssl_context(self) -> ssl.SSLContext:
        """The TLS settings of :meth:`_tls_pool_kwargs`, as a context."""
        kwargs = self._tls_pool_kwargs()
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
                    '[notifier] webhook_client_cert', kwargs['cert_file'],
                    f'cannot load the client certificate and key: {exc}'
                ) from None
        return context

    def _base_headers(self) -> dict[str, str]:
        # The headers requests sent, so consumers see no change.
        headers = {
            'User-Agent': requests_utils.default_user_agent(),
            'Accept-Encoding': urllib3.util.make_headers(
                accept_encoding=True)['accept-encoding'],
            'Accept': '*/*',
            'Connection': 'keep-alive',
            'Content-Type': 'application/json',
        }
        # As requests: an entry in ~/.netrc wins over the URL's userinfo.
        auth = requests_utils.get_netrc_auth(self.target_url)
        if not auth and (self.parsed_url.username
                         or self.parsed_url.password):
            auth = (urlparse.unquote(self.parsed_url.username or ''),
                    urlparse.unquote(self.parsed_url.password or ''))
        if auth:
            headers['Authorization'] = urllib3.util.make_headers(
                basic_auth=f'{auth[0]}:{auth[1]}')['authorization']
        return headers

    @property
    def safe_url(self) -> str:
        """The URL to show in logs and errors: no userinfo, no query."""
        parsed = self.parsed_url
        netloc = parsed.netloc.rpartition('@')[2]
        return urlparse.urlunsplit((parsed.scheme, netloc, parsed.path,
                                    '', ''))

    def _url_overrides(self) -> dict[str, str]:
        overrides = {}
        for name, value in urlparse.parse_qsl(self.parsed_url.query,
                                              keep_blank_values=True):
            if not name.startswith(_URL_PARAM_PREFIX):
                continue
            key = name[len(_URL_PARAM_PREFIX):]
            if key not in URL_PARAMS:
                raise exceptions.ConfigurationError(
                    'notifier URL', self.safe_url,
                    f'unknown parameter {name!r}; the doctor- parameters '
                    f'are ' + ', '.join(_URL_PARAM_PREFIX + p
                                        for p in URL_PARAMS))
            overrides[key] = value
        return overrides

    def _parse_timeout(self, value: str | None, default: float) -> float:
        if value is None:
            return default
        try:
            timeout = float(value)
        except ValueError:
            timeout = -1.0
        if not 0.1 <= timeout < float('inf'):
            raise exceptions.ConfigurationError(
                'notifier URL', self.safe_url,
                f'doctor-timeout={value!r} is not a number of seconds of '
                f'at least 0.1')
        return timeout

    def _configure_tls(self, opts: typing.Any,
                       verify_override: str | None) -> None:
        verify = opts.webhook_ssl_verify
        if verify_override is not None:
            try:
                verify = strutils.bool_from_string(verify_override,
                                                   strict=True)
            except ValueError:
                raise exceptions.ConfigurationError(
                    'notifier URL', self.safe_url,
                    f'doctor-ssl-verify={verify_override!r} is not a '
                    f'boolean; write true or false') from None
        if verify and opts.webhook_ca_bundle:
            self.verify = _existing_file('webhook_ca_bundle',
                                         opts.webhook_ca_bundle)
        else:
            self.verify = verify
        if opts.webhook_client_key and not opts.webhook_client_cert:
            raise exceptions.ConfigurationError(
                '[notifier] webhook_client_key', opts.webhook_client_key,
                'is set without webhook_client_cert; set the certificate '
                'too, or unset the key')
        if opts.webhook_client_cert:
            cert = _existing_file('webhook_client_cert',
                                  opts.webhook_client_cert)
            self.cert = ((cert, _existing_file('webhook_client_key',
                                               opts.webhook_client_key))
                         if opts.webhook_client_key else cert)

    #: Each alarm body is one delivery, in order per alarm id.
    durable = True

    def notify(self, events: typing.Sequence[event_model.Event],
               alarm: base.AlarmNotification | None = None) -> None:
        prepared = self.prepare(events, alarm)
        for index, item in enumerate(prepared):
            try:
                self.send(item)
            except exceptions.DeliveryError as exc:
                if index == 0:
                    raise
                raise exceptions.DeliveryError(
                    f'{exc} ({index} of {len(prepared)} events of this '
                    f'batch were delivered before)') from exc

    def prepare(self, events: typing.Sequence[event_model.Event],
                alarm: base.AlarmNotification | None = None
                ) -> list[base.Prepared]:
        """The alarm's body or, without one, one body per event."""
        if alarm is not None:
            pairs = [(alarm, events[0].message_id)]
        else:
            pairs = [(self.alarm_from_event(e), e.message_id)
                     for e in events]
        return [base.Prepared(key=a.alarm_id, event_id=event_id,
                              label=a.alarm_name,
                              payload=json.dumps(
                                  a.as_body(),
                                  default=_json_default).encode('utf-8'))
                for a, event_id in pairs]

    def send(self, item: typing.Any) -> None:
        self._post(item.payload, item.event_id, item.label)

    def alarm_from_event(self, event: event_model.Event
                         ) -> base.AlarmNotification:
        """Synthesise the alarm Aodh's event evaluator would report."""
        severity = str(event.trait('severity') or '').lower()
        if severity not in SEVERITIES:
            severity = self.default_severity
        status = str(event.trait('status') or '').lower()
        if not event.event_type.endswith('.down') and status == 'up':
            previous, current = 'alarm', 'ok'
        else:
            previous, current = 'ok', 'alarm'
        alarm_id = uuid.uuid5(uuid.NAMESPACE_URL, '\n'.join(
            (self._stable_url(), event.event_type)))
        return base.AlarmNotification(
            alarm_id=str(alarm_id),
            alarm_name=f'doctor:{event.event_type}',
            severity=severity,
            previous=previous,
            current=current,
            reason=(f'Event <id={event.message_id},'
                    f'event_type={event.event_type}> received.'),
            reason_data={'type': 'event', 'event': event.serialize()})

    def _stable_url(self) -> str:
        # Without userinfo, so rotating credentials keeps alarm ids.
        parsed = urlparse.urlsplit(self.target_url)
        return urlparse.urlunsplit(parsed._replace(
            netloc=parsed.netloc.rpartition('@')[2]))

    def _post(self, body: bytes, event_id: str, name: str) -> None:
        request_id = f'req-{uuid.uuid4()}'
        headers = self._headers.copy()
        headers['x-openstack-request-id'] = request_id
        headers['X-Doctor-Event-Id'] = event_id
        if self._signing_key:
            signing.sign(self._signing_key, body, headers)
        started = time.monotonic()
        try:
            if self._direct is not None:
                response = self._post_direct(body, headers)
            elif self._forwarded:
                response = self.pool_manager.urlopen(
                    'POST', self._absolute_url, body=body, headers=headers,
                    retries=self.retries, timeout=self._timeout,
                    redirect=False)
            else:
                pool = self._pool
                if pool is None:
                    pool = self._pool = self.pool_manager.connection_from_url(
                        self._absolute_url)
                response = pool.urlopen(
                    'POST', self._request_uri, body=body, headers=headers,
                    retries=self.retries, timeout=self._timeout,
                    redirect=False)
        except (urllib3_exc.HTTPError, OSError) as exc:
            raise exceptions.DeliveryError(
                f'could not post alarm {name} to webhook '
                f'{self.safe_url}: {httperrors.describe(exc, self.timeout)}. '
                f'{_advice(exc)}') from exc
        elapsed = time.monotonic() - started
        if not 200 <= response.status < 300:
            raise exceptions.DeliveryError(
                f'webhook {self.safe_url} refused alarm {name}: '
                f'HTTP {response.status} {response.reason}'
                f'{_excerpt(response)}. {_status_advice(response.status)}')
        # Debug: at info, the record of each of a rack's thousands of
        # deliveries cost more CPU than the delivery.
        LOG.debug('Delivered alarm %(name)s (event %(event)s) to %(url)s: '
                  'HTTP %(status)d in %(elapsed).3fs, request-id '
                  '%(request_id)s',
                  {'name': name, 'event': event_id,
                   'url': self.safe_url, 'status': response.status,
                   'elapsed': elapsed, 'request_id': request_id})

    def _post_direct(self, body: bytes, headers: dict[str, str]
                     ) -> _Response:
        """POST over a kept-alive connection, retrying as urllib3 did.

        A connection that could not be made, or a 500/502/503/504 answer,
        is retried up to ``webhook_max_retries`` times (at once, then after
        0.2 s, 0.4 s, ...). A response that timed out or was cut is not: the
        consumer may have acted on it.

        :raises urllib3.exceptions.HTTPError: the failure, in urllib3's
            types, which :mod:`doctor_plugin.common.httperrors` describes
        """
        attempt = 0
        while True:
            if attempt > 1:
                time.sleep(_RETRY_BACKOFF * 2 ** (attempt - 1))
            try:
                response = self._direct.post(self._request_uri, body,
                                             headers)
            except (urllib3_exc.NewConnectionError,
                    urllib3_exc.ConnectTimeoutError):
                if attempt >= self._max_retries:
                    raise
            else:
                if (response.status not in _RETRY_STATUSES
                        or attempt >= self._max_retries):
                    return response
            attempt += 1

    def close(self) -> None:
        # A later POST opens a new pool, as a closed requests session did.
        self._pool = None
        self.pool_manager.clear()
        if self._direct is not None:
            self._direct.close()


def _strip_doctor_params(query: str) -> str:
    # Filter the raw pairs so the kept ones are sent exactly as written.
    return '&'.join(
        pair for pair in query.split('&')
        if pair and not urlparse.unquote_plus(
            pair.partition('=')[0]).startswith(_URL_PARAM_PREFIX))


def _existing_file(option: str, path: str) -> str:
    if not os.path.isfile(path):
        raise exceptions.ConfigurationError(
            f'[notifier] {option}', path,
            'no such file; fix the path or unset the option')
    return path


def _json_default(value: typing.Any) -> typing.Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f'{type(value).__name__} is not JSON serialisable')


def _advice(exc: Exception) -> str:
    name = httperrors.error_name(exc)
    if name == 'SSLError':
        return ('Check the consumer\'s certificate and [notifier] '
                'webhook_ca_bundle, or add doctor-ssl-verify=false to the '
                'URL for a test consumer.')
    if name in ('ConnectTimeout', 'ReadTimeout'):
        return ('Check that the consumer is up and answers quickly, or '
                'raise [notifier] webhook_timeout (per URL: '
                'doctor-timeout=).')
    return ('Check that the consumer is running and that its host and '
            'port are reachable from this host.')


def _status_advice(status: int) -> str:
    if 300 <= status < 400:
        return ('Redirects are not followed; configure the URL the '
                'consumer redirects to.')
    if status in (401, 403):
        return 'Check the credentials the consumer expects.'
    if status < 500:
        return ('Check the URL path, and that the consumer accepts Aodh\'s '
                'alarm webhook body.')
    return 'The consumer failed; check its logs.'


def _excerpt(response: urllib3.BaseHTTPResponse | _Response,
             limit: int = 200) -> str:
    text = ' '.join(_response_text(response).split())
    if not text:
        return ''
    return f' ({text[:limit]}{"..." if len(text) > limit else ""})'


def _response_text(response: urllib3.BaseHTTPResponse | _Response) -> str:
    charset = _CHARSET.search(response.headers.get('Content-Type', ''))
    encoding = charset.group(1) if charset else 'utf-8'
    try:
        return response.data.decode(encoding, errors='replace')
    except LookupError:
        return response.data.decode('utf-8', errors='replace')


class _Response(typing.NamedTuple):
    """What a POST got back: what urllib3's response offered us."""

    status: int
    reason: str
    headers: typing.Any
    data: bytes


class _Connections:
    """Kept-alive http.client connections to one consumer.

    Idle connections are kept, at most ``maxsize`` of them; when all are
    busy a new one is opened rather than waited for (urllib3's
    ``block=False``). One found closed by the consumer while idle is
    replaced before it is used, as urllib3 does.
    """

    def __init__(self, scheme: str, host: str, port: int | None,
                 timeout: float, context: ssl.SSLContext | None,
                 maxsize: int) -> None:
        self._scheme = scheme
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
            raise urllib3_exc.SSLError(exc) from exc
        except TimeoutError as exc:
            conn.close()
            raise urllib3_exc.ConnectTimeoutError(
                conn, f'Connection to {self._host} timed out. (connect '
                      f'timeout={self._timeout})') from exc
        except OSError as exc:
            conn.close()
            raise urllib3_exc.NewConnectionError(
                conn, f'Failed to establish a new connection: {exc}'
            ) from exc
        # Headers and body leave in one send; without this the next
        # request could wait for the consumer's delayed ACK.
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

    def post(self, uri: str, body: bytes, headers: dict[str, str]
             ) -> _Response:
        conn = self._checkout()
        try:
            conn.request('POST', uri, body, headers)
            raw = conn.getresponse()
            data = raw.read()
        except TimeoutError as exc:
            conn.close()
            raise urllib3_exc.ReadTimeoutError(
                None, uri, f'Read timed out. (read timeout='
                           f'{self._timeout})') from exc
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            raise urllib3_exc.ProtocolError('Connection aborted.',
                                            exc) from exc
        if raw.will_close or len(self._idle) >= self._maxsize:
            conn.close()
        else:
            self._idle.append(conn)
        return _Response(raw.status, raw.reason, raw.headers, data)

    def close(self) -> None:
        while self._idle:
            try:
                self._idle.pop().close()
            except IndexError:
                break

    def __len__(self) -> int:
        return len(self._idle)


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the consumer closed an idle connection (readable: EOF)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
