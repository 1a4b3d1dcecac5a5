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

"""Send a monitor's fault reports to the inspector, as Doctor's monitors do.

Doctor's inspector takes host faults as ``PUT /events`` with a JSON list of
events (see :meth:`FaultReport.as_doctor_event`). This sits on the
notification path, so one keep-alive HTTP session is reused for every
report, and a failed attempt is retried quickly: a lost fault report is the
worst failure a monitor can have.

The reports go straight to the inspector through
:class:`doctor_plugin.common.http.Client`, kept-alive http.client
connections: through requests a report reached the inspector's handler
about a millisecond later (its per-request environment, hooks and
adapters), on the path Doctor's notification time is measured on.
Environment proxy settings are not used: a fault report must not depend
on a proxy being up. Retries are :func:`doctor_plugin.common.retry.call`'s,
with a 429's Retry-After as the least wait.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import typing
from urllib import parse as urlparse

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging

from doctor_plugin.common import http
from doctor_plugin.common import ksopts
from doctor_plugin.common import retry
from doctor_plugin import exceptions
from doctor_plugin.monitors import base

LOG = logging.getLogger(__name__)

GROUP = 'monitor'

OPTS = [
    cfg.StrOpt('inspector_url',
               default='http://127.0.0.1:12345/events',
               help='URL of the inspector\'s Doctor events API; fault '
                    'reports are sent to it as PUT with a JSON list of '
                    'Doctor events.'),
    cfg.StrOpt('inspector_secret',
               secret=True,
               help="The inspector's [inspector] shared_secret, sent in "
                    "the X-Auth-Token header of every report (the "
                    "inspector's default auth_strategy, shared_secret, "
                    "refuses reports without it). For an inspector with "
                    "auth_strategy = keystone, set [monitor_auth] "
                    "instead: a Keystone token is then sent."),
    cfg.FloatOpt('report_timeout',
                 default=2.0,
                 min=0.01,
                 help='Seconds to wait for the inspector to connect and '
                      'answer one fault report attempt.'),
    cfg.StrOpt('report_to',
               default='http',
               choices=[('http', "PUT to [monitor] inspector_url, the "
                                 "inspector's Doctor API"),
                        ('bus', 'a notification on [monitor] '
                                'notification_topic, which inspectors with '
                                'the "doctor" transformer in [inspector] '
                                'transformers take off the bus')],
               help='Where a monitor reports host faults.'),
    cfg.StrOpt('notification_topic',
               default='doctor_monitor',
               help='With report_to = bus: the topic of the reports; list it '
                    'in the inspectors\' [inspector] notification_topics.'),
    cfg.IntOpt('report_retries',
               default=3,
               min=0,
               help='How many times a fault report is sent again after a '
                    'connection error, a timeout or a 5xx answer, with a '
                    'short backoff (50 ms, doubling), or a 429 answer, '
                    'after the Retry-After it gives (at most 1 s). Other '
                    '4xx answers are not retried.'),
]

#: keystoneauth1's options for monitors that authenticate with Keystone
#: (an inspector with ``auth_strategy = keystone``).
AUTH_GROUP = 'monitor_auth'


def auth_opts() -> list[cfg.Opt]:
    """``[monitor_auth]``: keystoneauth1's session and common auth options.

    The auth plugin's own options (``password``: ``auth_url``,
    ``username``, ...) are registered by keystoneauth1 when it loads the
    plugin ``auth_type`` names.
    """
    return (ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options())


def list_auth_opts() -> list[cfg.Opt]:
    """``[monitor_auth]`` for oslo-config-generator, ``password``'s too."""
    return ksopts.with_password_plugin(auth_opts())


#: Seconds to wait before the first retry; doubled for each further one.
RETRY_BACKOFF = 0.05
#: Upper bound of the wait between two attempts, in seconds.
MAX_BACKOFF = 1.0
#: The waits between attempts: 50 ms, doubling, up to 1 s.
BACKOFF = retry.Backoff(RETRY_BACKOFF, MAX_BACKOFF, jitter=False)
#: How much of a non-JSON error body to quote in logs and errors.
MAX_ERROR_BODY = 500

_HEADERS = {
    'Content-Type': 'application/json',
    'Accept': 'application/json',
}


_DEFAULTS = {opt.dest: opt.default for opt in OPTS}


@dataclasses.dataclass(frozen=True, slots=True)
class ReporterSettings:
    """Where and how an :class:`InspectorReporter` reports.

    The ``[monitor]`` options of the same names, for a reporter built
    without a configuration (an Aodh or Ceilometer plugin's doctor:// URL).
    """

    #: ``[monitor] inspector_url``
    url: str = _DEFAULTS['inspector_url']
    #: ``[monitor] report_timeout``, seconds
    timeout: float = _DEFAULTS['report_timeout']
    #: ``[monitor] report_retries``
    retries: int = _DEFAULTS['report_retries']
    #: ``[monitor] inspector_secret``, sent in X-Auth-Token
    secret: str | None = None

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> ReporterSettings:
        """The settings of ``conf``'s ``[monitor]`` options."""
        group = conf.monitor
        return cls(url=group.inspector_url, timeout=group.report_timeout,
                   retries=group.report_retries,
                   secret=group.inspector_secret or None)


class InspectorReporter:
    """Report faults to the inspector's ``PUT /events`` API.

    An instance is the ``reporter`` a monitor calls once per detected state
    change. Calls are serialised; a monitor calls it from one worker thread
    so that a slow inspector never delays probing.

    :param conf: configuration with the ``[monitor]`` options of this module
        (and ``[monitor_auth]`` for Keystone tokens); None with ``settings``
    :param settings: the reporter's settings, given explicitly instead of
        read from ``conf`` (no Keystone then)
    """

    def __init__(self, conf: cfg.ConfigOpts | None = None, *,
                 settings: ReporterSettings | None = None) -> None:
        if settings is None:
            if conf is None:
                raise TypeError('InspectorReporter needs conf or settings')
            settings = ReporterSettings.from_conf(conf)
        self.url: str = settings.url
        self.timeout: float = settings.timeout
        self.retries: int = settings.retries
        self._headers = dict(_HEADERS)
        if settings.secret:
            self._headers['X-Auth-Token'] = settings.secret
        #: With ``[monitor_auth] auth_type``: a keystoneauth1 session whose
        #: token (kept and renewed by its plugin) goes in X-Auth-Token.
        self._keystone = (_keystone_session(conf) if conf is not None
                          else None)
        #: One client per inspector (scheme and host:port).
        self._clients: dict[tuple[str, str], http.Client] = {}
        self._lock = threading.Lock()

    def __call__(self, report: base.FaultReport) -> None:
        """Send ``report`` to the inspector.

        :raises doctor_plugin.exceptions.DeliveryError: if the inspector
            rejected the report (4xx) or could not take it after
            ``report_retries`` retries.
        """
        self.send([report.as_doctor_event()],
                  f'host {report.hostname} {report.status}',
                  f' (event {report.monitor_event_id})')

    def send(self, body: list, what: str, detail: str = '',
             url: str | None = None) -> None:
        """PUT ``body`` (JSON) to the inspector, retrying as configured.

        :param what: what is reported, for logs and errors
            ("host compute-1 down")
        :param detail: added to the success log line
        :param url: another path of the inspector API than
            ``[monitor] inspector_url``
        :raises doctor_plugin.exceptions.DeliveryError: as :meth:`__call__`
        """
        data = json.dumps(body).encode('utf-8')
        with self._lock:
            self._send(data, what, detail, url or self.url)

    def _client(self, url: str) -> http.Client:
        parsed = urlparse.urlsplit(url)
        key = (parsed.scheme, parsed.netloc)
        client = self._clients.get(key)
        if client is None:
            # One connection: calls are serialised anyway. No proxy: a
            # fault report must not depend on one being up.
            client = self._clients[key] = http.Client(
                url, self.timeout,
                http.TLSSettings(system_ca=True)
                if parsed.scheme == 'https' else None,
                pool_size=1, use_proxy=False)
        return client

    def _send(self, data: bytes, what: str, detail: str, url: str) -> None:
        attempts = self.retries + 1
        client = self._client(url)
        uri = urlparse.urlunsplit(
            ('', '', urlparse.urlsplit(url).path or '/',
             urlparse.urlsplit(url).query, ''))
        counter = iter(range(1, attempts + 1))

        def warn(attempt: int, error: str, where: str = '') -> None:
            LOG.warning('Attempt %(attempt)d/%(attempts)d to report '
                        '%(what)s%(where)s failed: %(error)s',
                        {'attempt': attempt, 'attempts': attempts,
                         'what': what, 'where': where, 'error': error})

        def attempt() -> None:
            number = next(counter)
            started = time.monotonic()
            headers = self._headers
            if self._keystone is not None:
                try:
                    headers = dict(headers, **{
                        'X-Auth-Token': self._keystone.get_token()})
                except ks_exc.ClientException as exc:
                    error = (f'no Keystone token ({type(exc).__name__}: '
                             f'{exc}); check [monitor_auth]')
                    warn(number, error)
                    raise _Failed(error) from None
            try:
                response = client.request('PUT', data, headers, uri)
            except http.HTTPError as exc:
                error = http.describe(exc, self.timeout)
                warn(number, error, f' to {url}')
                raise _Failed(error) from None
            if response.status < 300:
                LOG.info('Reported %(what)s%(detail)s to %(url)s in '
                         '%(ms).1f ms',
                         {'what': what, 'detail': detail, 'url': url,
                          'ms': (time.monotonic() - started) * 1000.0})
                return
            error = _error_body(response)
            if response.status == 401 and self._keystone is not None:
                # Revoked or expired early: the next attempt gets a new
                # token.
                self._keystone.invalidate()
                raise _Failed(f'HTTP 401: {error}')
            if response.status < 500 and response.status != 429:
                LOG.error('The inspector at %(url)s rejected the report of '
                          '%(what)s: HTTP %(code)d %(error)s',
                          {'url': url, 'what': what,
                           'code': response.status, 'error': error})
                raise exceptions.DeliveryError(
                    f'the inspector at {url} rejected the report of '
                    f'{what} with HTTP {response.status}: {error}')
            failure = _Failed(f'HTTP {response.status}: {error}',
                              _retry_after(response))
            warn(number, str(failure), f' to {url}')
            raise failure

        try:
            retry.call(attempt, backoff=BACKOFF,
                       retry_if=lambda exc: isinstance(exc, _Failed),
                       attempts=attempts,
                       # An inspector that limits our rate (429) says how
                       # long.
                       wait_hint=lambda exc: getattr(exc, 'retry_after', 0.0))
        except _Failed as exc:
            raise exceptions.DeliveryError(
                f'could not report {what} to the inspector at {url} after '
                f'{attempts} attempt(s); last error: {exc}. Check that '
                f'doctor-plugin-inspector is running and reachable, and '
                f'that [monitor] inspector_url points at its events API.'
            ) from None

    def close(self) -> None:
        """Close the kept-alive connections to the inspector."""
        for client in self._clients.values():
            client.close()


def _keystone_session(conf: cfg.ConfigOpts) -> typing.Any:
    """The ``[monitor_auth]`` session, or None without an ``auth_type``.

    :raises ConfigurationError: if the auth settings are wrong
    """
    if not conf[AUTH_GROUP].auth_type:
        return None
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, AUTH_GROUP)
    except (ks_exc.NoMatchingPlugin, ks_exc.MissingRequiredOptions,
            cfg.Error) as exc:
        raise exceptions.ConfigurationError(
            f'[{AUTH_GROUP}]', 'auth_type',
            f'{exc}; set auth_type = password with auth_url, username, '
            f'password, project_name and the domains of a user with the '
            f'doctor_monitor role') from None
    return ks_loading.load_session_from_conf_options(conf, AUTH_GROUP,
                                                     auth=auth)


class _Failed(Exception):
    """An attempt that failed in a way worth another.

    :ivar retry_after: the least wait the inspector asked for (429)
    """

    def __init__(self, error: str, retry_after: float = 0.0) -> None:
        super().__init__(error)
        self.retry_after = retry_after


def _retry_after(response: http.Response) -> float:
    """Seconds a Retry-After header asks for (capped), or 0."""
    try:
        return min(max(float(response.headers.get('Retry-After', 0)), 0.0),
                   MAX_BACKOFF)
    except ValueError:
        return 0.0


def _error_body(response: http.Response) -> str:
    """The inspector's error, compact JSON if it sent JSON, else its text."""
    try:
        return json.dumps(json.loads(response.data), sort_keys=True)
    except ValueError:
        text = response.data.decode('utf-8', 'replace').strip()
        if len(text) > MAX_ERROR_BODY:
            text = text[:MAX_ERROR_BODY] + '...'
        return text or '(empty body)'


#: The event type of a monitor's report on the bus.
REPORT_EVENT_TYPE = 'doctor.monitor.report'


class BusReporter:
    """Report faults as notifications on the bus (``report_to = bus``).

    The payload is the body Doctor's ``PUT /events`` takes; the inspector's
    ``doctor`` transformer, listed in ``[inspector] transformers``, turns it
    into events. The notifier is oslo.messaging's, with its reconnects.

    :param conf: the service's configuration (transport options too)
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        from doctor_plugin.common import messaging

        self.topic = conf.monitor.notification_topic
        self.url = f'the bus (topic {self.topic})'
        self._notifier = oslo_messaging.Notifier(
            messaging.get_transport(conf), driver='messagingv2',
            publisher_id='doctor-plugin-monitor', topics=[self.topic])

    def __call__(self, report: base.FaultReport) -> None:
        try:
            self._notifier.info({}, REPORT_EVENT_TYPE,
                                [report.as_doctor_event()])
        except oslo_messaging.MessageDeliveryFailure as exc:
            raise exceptions.DeliveryError(
                f'could not put the report of host {report.hostname} '
                f'{report.status} on the bus: {exc}') from exc
        LOG.info('Reported host %(host)s %(status)s (event %(id)s) on the '
                 'bus', {'host': report.hostname, 'status': report.status,
                         'id': report.monitor_event_id})

    def close(self) -> None:
        """Nothing to close: the transport is the process's."""


def make_reporter(conf: cfg.ConfigOpts
                  ) -> InspectorReporter | BusReporter:
    """The reporter ``[monitor] report_to`` names."""
    if conf.monitor.report_to == 'bus':
        return BusReporter(conf)
    return InspectorReporter(conf)
