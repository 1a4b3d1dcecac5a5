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

The inspectors may run active/active as a cluster, any member taking a
report and handing it to the host's owner: ``[monitor] inspector_url``
then lists them all, and a report that one cannot take goes to the next
(see :meth:`InspectorReporter.send` for how the attempts are shared).
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
    cfg.ListOpt('inspector_url',
                default=['http://127.0.0.1:12345/events'],
                help='URL of the inspector\'s Doctor events API; fault '
                     'reports are sent to it as PUT with a JSON list of '
                     'Doctor events. For a cluster of inspectors, list '
                     'every member, separated by commas: a report goes to '
                     'the one that took the last report, and to the next '
                     'when it cannot be reached or answers 5xx or 429, '
                     'within the same report_retries.'),
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
                    '4xx answers are not retried. With several '
                    'inspector_url, each retry goes to the next one, at '
                    'once if it was not tried yet for this report, and '
                    'every one is tried at least once.'),
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


def check_urls(urls: typing.Sequence[str]) -> tuple[str, ...]:
    """``[monitor] inspector_url``'s URLs, checked.

    :raises ConfigurationError: naming the option and the bad value, if
        there is none or one is not an http(s) URL with a host
    """
    hint = ('write http://HOST:PORT/events, the inspector\'s API ([inspector] '
            'host and port, 12345 by default), or for a cluster every '
            'member\'s, separated by commas: http://ctl-1:12345/events,'
            'http://ctl-2:12345/events')
    if not urls:
        raise exceptions.ConfigurationError(
            f'[{GROUP}]', 'inspector_url', f'no inspector is set; {hint}')
    for url in urls:
        try:
            parsed = urlparse.urlsplit(url)
            # Raises ValueError for a port that is not a number (or not
            # in 0-65535).
            parsed.port
        except ValueError as exc:
            raise exceptions.ConfigurationError(
                f'[{GROUP}]', 'inspector_url',
                f'{url!r} is not a valid URL ({exc}); {hint}') from None
        if parsed.scheme not in ('http', 'https'):
            raise exceptions.ConfigurationError(
                f'[{GROUP}]', 'inspector_url',
                f'{url!r} is not an http or https URL; {hint}')
        if not parsed.hostname:
            raise exceptions.ConfigurationError(
                f'[{GROUP}]', 'inspector_url',
                f'{url!r} names no host; {hint}')
    return tuple(urls)


@dataclasses.dataclass(frozen=True, slots=True)
class ReporterSettings:
    """Where and how an :class:`InspectorReporter` reports.

    The ``[monitor]`` options of the same names, for a reporter built
    without a configuration (an Aodh or Ceilometer plugin's doctor:// URL).

    :raises ConfigurationError: if ``urls`` is empty or one is not an
        http(s) URL with a host (:func:`check_urls`)
    """

    #: ``[monitor] inspector_url``: the inspectors, in the order tried
    urls: tuple[str, ...] = tuple(_DEFAULTS['inspector_url'])
    #: ``[monitor] report_timeout``, seconds
    timeout: float = _DEFAULTS['report_timeout']
    #: ``[monitor] report_retries``
    retries: int = _DEFAULTS['report_retries']
    #: ``[monitor] inspector_secret``, sent in X-Auth-Token
    secret: str | None = None

    def __post_init__(self) -> None:
        # A list (from the option) would make the settings unhashable.
        object.__setattr__(self, 'urls', check_urls(self.urls))

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> ReporterSettings:
        """The settings of ``conf``'s ``[monitor]`` options."""
        group = conf.monitor
        return cls(urls=tuple(group.inspector_url),
                   timeout=group.report_timeout,
                   retries=group.report_retries,
                   secret=group.inspector_secret or None)


class InspectorReporter:
    """Report faults to the inspector's ``PUT /events`` API.

    An instance is the ``reporter`` a monitor calls once per detected state
    change. Calls are serialised; a monitor calls it from one worker thread
    so that a slow inspector never delays probing.

    With several inspectors (a cluster) a report goes to the one that took
    the last report, whose kept-alive connection is warm, and moves on to
    the next only when that one fails (:meth:`send`).

    :param conf: configuration with the ``[monitor]`` options of this module
        (and ``[monitor_auth]`` for Keystone tokens); None with ``settings``
    :param settings: the reporter's settings, given explicitly instead of
        read from ``conf`` (no Keystone then)
    :raises ConfigurationError: for a bad ``[monitor] inspector_url``
    """

    def __init__(self, conf: cfg.ConfigOpts | None = None, *,
                 settings: ReporterSettings | None = None) -> None:
        if settings is None:
            if conf is None:
                raise TypeError('InspectorReporter needs conf or settings')
            settings = ReporterSettings.from_conf(conf)
        #: The inspectors, in the order they are tried.
        self.urls: tuple[str, ...] = settings.urls
        #: The index in :attr:`urls` of the inspector that took the last
        #: report (or is tried first for the next).
        self._current = 0
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

    @property
    def url(self) -> str:
        """The inspector the next report goes to first."""
        return self.urls[self._current]

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

        With several ``[monitor] inspector_url`` the attempts are shared
        between them, not multiplied: an attempt that fails with a
        connection error, a timeout, a 5xx or a 429 makes the next
        attempt go to the next inspector of the list (around again after
        the last). There are ``report_retries + 1`` attempts, as with one
        inspector, or as many as there are inspectors if that is more, so
        that each is tried once: the worst case, every inspector timing
        out, takes no longer than with one inspector (or one timeout per
        inspector, when more are listed than there are attempts), and a
        report is never given up while an inspector of the list was not
        tried. Retrying every inspector ``report_retries`` times would
        multiply how long a monitor blocks on a report by the size of
        the cluster; and when several members fail alike, the cluster,
        not one member, is in trouble, which more attempts do not fix.

        A failure says nothing of another member, so the first attempt to
        an inspector not yet tried for this report goes at once; going
        back to one already tried waits the usual backoff (or the
        Retry-After). A 4xx other than 429 would fail on every member (a
        bad report, a bad token) and is raised at once; a 401 with
        Keystone is retried on the same inspector with a new token.

        The inspector that took the report is tried first for the next
        one: its connection is kept alive.

        :param what: what is reported, for logs and errors
            ("host compute-1 down")
        :param detail: added to the success log line
        :param url: another path of the inspector API than
            ``[monitor] inspector_url``, sent to that one URL only
        :raises doctor_plugin.exceptions.DeliveryError: as :meth:`__call__`
        """
        data = json.dumps(body).encode('utf-8')
        with self._lock:
            if url:
                self._send(data, what, detail, (url,), sticky=False)
            else:
                self._send(data, what, detail, self.urls, sticky=True)

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

    def _send(self, data: bytes, what: str, detail: str,
              urls: tuple[str, ...], sticky: bool) -> None:
        """Send ``data`` to one of ``urls``, as :meth:`send` says.

        :param sticky: whether ``urls`` are :attr:`urls`, tried from the
            one that took the last report on (else from the first)
        """
        attempts = max(self.retries + 1, len(urls))
        counter = iter(range(1, attempts + 1))
        #: The index of the inspector the next attempt goes to.
        current = self._current if sticky else 0
        #: The inspectors an attempt went to, for the waits.
        tried: set[int] = set()

        def warn(attempt: int, error: str, where: str = '',
                 then: str = '') -> None:
            LOG.warning('Attempt %(attempt)d/%(attempts)d to report '
                        '%(what)s%(where)s failed: %(error)s%(then)s',
                        {'attempt': attempt, 'attempts': attempts,
                         'what': what, 'where': where, 'error': error,
                         'then': then})

        def fail_over(number: int, url: str, error: str,
                      retry_after: float = 0.0) -> _Failed:
            # The next attempt goes to the next inspector.
            nonlocal current
            current = (current + 1) % len(urls)
            if sticky:
                self._current = current
            then = ''
            if number < attempts and len(urls) > 1:
                then = f'; trying {urls[current]} next'
            warn(number, error, f' to {url}', then)
            return _Failed(error, retry_after)

        def attempt() -> None:
            number = next(counter)
            url = urls[current]
            tried.add(current)
            client = self._client(url)
            split = urlparse.urlsplit(url)
            uri = urlparse.urlunsplit(('', '', split.path or '/',
                                       split.query, ''))
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
                raise fail_over(number, url,
                                http.describe(exc, self.timeout)) from None
            if response.status < 300:
                LOG.info('Reported %(what)s%(detail)s to %(url)s in '
                         '%(ms).1f ms',
                         {'what': what, 'detail': detail, 'url': url,
                          'ms': (time.monotonic() - started) * 1000.0})
                return
            error = _error_body(response)
            if response.status == 401 and self._keystone is not None:
                # Revoked or expired early: the next attempt, to the same
                # inspector (Keystone's token is the same for all), gets a
                # new token.
                self._keystone.invalidate()
                raise _Failed(f'HTTP 401: {error}')
            if response.status < 500 and response.status != 429:
                # A bad report or a bad token: every inspector would
                # refuse it too.
                LOG.error('The inspector at %(url)s rejected the report of '
                          '%(what)s: HTTP %(code)d %(error)s',
                          {'url': url, 'what': what,
                           'code': response.status, 'error': error})
                raise exceptions.DeliveryError(
                    f'the inspector at {url} rejected the report of '
                    f'{what} with HTTP {response.status}: {error}')
            raise fail_over(number, url, f'HTTP {response.status}: {error}',
                            _retry_after(response))

        def pause(delay: float) -> None:
            # Another inspector than those that failed is worth trying at
            # once; one that failed already gets the backoff.
            if current in tried:
                time.sleep(delay)

        try:
            retry.call(attempt, backoff=BACKOFF,
                       retry_if=lambda exc: isinstance(exc, _Failed),
                       attempts=attempts,
                       # An inspector that limits our rate (429) says how
                       # long.
                       wait_hint=lambda exc: getattr(exc, 'retry_after', 0.0),
                       sleep=pause)
        except _Failed as exc:
            where = (f'the inspector at {urls[0]}' if len(urls) == 1
                     else f'any of the inspectors at {", ".join(urls)}')
            raise exceptions.DeliveryError(
                f'could not report {what} to {where} after '
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
