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

"""The few Nova calls Doctor needs, through keystoneauth1.

The controller forces compute services down and resets instances
(:mod:`doctor_plugin.controller.fixup`); the topology lists the servers
on each host (:mod:`doctor_plugin.topology.nova`). Both use one
:class:`NovaClient`.

Nova is reached the way every OpenStack service reaches another: a
``[nova]`` section holds keystoneauth1's auth, session and adapter options
(``auth_type = password`` with a service user, or ``auth_type = none`` with
``endpoint_override`` for a standalone Nova or a test stand-in), and a
keystoneauth1 ``Adapter`` sends the requests, with the
``OpenStack-API-Version: compute X.Y`` header set from its ``microversion``
argument.

Every call has a timeout and bounded retries with exponential backoff and
jitter (:mod:`doctor_plugin.common.retry`) on connection errors, timeouts
and 5xx answers. Failures come out as our own exceptions:
:class:`~doctor_plugin.exceptions.NovaAuthError` for 401/403,
:class:`~doctor_plugin.exceptions.NovaUnavailable` when the retries are
exhausted, :class:`~doctor_plugin.exceptions.NovaError` for any other
refusal, with Nova's own message.
"""

from __future__ import annotations

import threading
import typing
import urllib.parse

from keystoneauth1 import discover as ks_discover
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from oslo_config import cfg
from oslo_log import log as logging
import requests

from doctor_plugin.common import http as http_client
from doctor_plugin.common import ksopts
from doctor_plugin.common import retry
from doctor_plugin.common import urls
from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)

GROUP = 'nova'

OPTS = [
    cfg.FloatOpt('request_timeout',
                 default=5.0, min=0.01,
                 help='Seconds to wait for Nova to answer one request '
                      '(connect and read) before it counts as failed and '
                      'is retried. Also the session timeout when the '
                      'keystoneauth "timeout" option is unset.'),
    cfg.IntOpt('retries',
               default=3, min=0,
               help='How many times a Nova request is retried after a '
                    'connection error, a timeout or a 5xx answer (never '
                    'after another 4xx). These retries replace '
                    'keystoneauth\'s connect_retries and '
                    'status_code_retries, which are not used here.'),
    cfg.FloatOpt('retry_backoff',
                 default=0.2, min=0.0,
                 help='Seconds before the first retry of a Nova request; '
                      'each further retry waits twice as long (with '
                      'random jitter), up to 10 seconds.'),
    cfg.IntOpt('max_parallel_resets',
               default=16, min=1,
               help='At most this many instance state resets are sent to '
                    'Nova at once when a host fails.'),
    cfg.FloatOpt('fixup_deadline',
                 default=300.0, min=0.0,
                 help='Seconds the controller keeps trying to fix Nova up '
                      'after a host fault (forcing the compute service '
                      'down, setting its instances to error), including '
                      'waiting for an unavailable Nova to come back. After '
                      'that the fix-up is reported as failed.'),
    cfg.StrOpt('fixup_cpu_priority',
               default='low',
               choices=[('normal', 'like the rest of the inspector'),
                        ('low', 'nice 10 (Linux, per thread)'),
                        ('idle', 'SCHED_IDLE (Linux): only CPU nothing '
                                 'else wants; on a saturated host the '
                                 'fix-up may wait until fixup_deadline')],
               help='CPU priority of the threads that fix Nova up. Hundreds '
                    'of instance resets are a burst of CPU in the inspector '
                    'right after a fault; below normal, the CPU goes first '
                    'to notifying tenants (the inspector\'s next faults, '
                    'and the listener and broker when they share the '
                    'host).'),
]

_T = typing.TypeVar('_T')


class _Retriable(Exception):
    """A 5xx answer, a connection error or a timeout: worth another try."""


#: The longest wait between two retries of one request, in seconds.
MAX_BACKOFF = 10.0

#: Microversions that change how a compute service is forced down.
SERVICE_UUIDS = (2, 53)
FORCE_DOWN = (2, 11)


def runtime_opts() -> list[cfg.Opt]:
    """Ours, then keystoneauth1's session, adapter and common auth options.

    The options of the auth plugin itself are registered by keystoneauth1
    when it loads the plugin ``auth_type`` names: registering the
    ``password`` plugin's up front would make its ``auth_url`` required
    even with ``auth_type = none``.
    """
    adapter_opts = ks_loading.get_adapter_conf_options(
        include_deprecated=False)
    cfg.set_defaults(adapter_opts, service_type='compute',
                     valid_interfaces=['internal', 'public'])
    return ksopts.unique(OPTS
                         + ks_loading.get_session_conf_options()
                         + adapter_opts
                         + ks_loading.get_auth_common_conf_options())


def list_opts() -> list[cfg.Opt]:
    """Every option of the ``[nova]`` group, for oslo-config-generator.

    The runtime options and those of keystoneauth1's ``password`` plugin,
    the one a deployment uses with a service user (another plugin's
    options are documented by keystoneauth1).
    """
    return ksopts.with_password_plugin(runtime_opts())


def _nova_message(resp: requests.Response) -> str:
    """Nova's explanation of an error answer, or the start of its body."""
    try:
        body = resp.json()
    except ValueError:
        text = (resp.text or '').strip()
        return text[:300] or resp.reason or f'HTTP {resp.status_code}'
    if isinstance(body, dict):
        # Nova wraps its faults: {"itemNotFound": {"code": 404,
        # "message": "..."}}; other services use {"error": {...}}.
        for value in body.values():
            if isinstance(value, dict) and value.get('message'):
                return str(value['message'])[:300]
        if body.get('message'):
            return str(body['message'])[:300]
    return str(body)[:300]


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split('.')
    return int(major), int(minor)


class NovaClient:
    """Force compute services down, reset instance states, list servers.

    Thread-safe: the controller calls it from many threads at once. Use
    one client per process; it keeps a connection pool sized for
    ``[nova] max_parallel_resets`` parallel calls.

    :param conf: configuration with the ``[nova]`` group (registered by
        :func:`doctor_plugin.opts.register_all`)
    :raises ConfigurationError: if the ``[nova]`` auth settings are
        missing or wrong
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        group = conf[GROUP]
        try:
            auth = ks_loading.load_auth_from_conf_options(conf, GROUP)
        except ks_exc.NoMatchingPlugin as exc:
            raise exceptions.ConfigurationError(
                '[nova]', 'auth_type',
                f'{exc}; use "password" with a service user, or "none" '
                f'with endpoint_override for a Nova without Keystone'
            ) from None
        except ks_exc.MissingRequiredOptions as exc:
            raise exceptions.ConfigurationError(
                '[nova]', None, f'{exc}; set them in [nova]') from None
        if auth is None:
            raise exceptions.ConfigurationError(
                '[nova]', 'auth_type',
                'not set: the controller needs credentials for Nova. Use '
                '"password" with auth_url, username, password, '
                'project_name and the domains of a service user, or '
                '"none" with endpoint_override for a Nova without '
                'Keystone')
        # The controller runs up to max_parallel_resets fix-up jobs (each
        # forcing a service down) and as many resets at once: a rack's
        # failure uses both, and a smaller pool opens and drops a new
        # connection for every call over its size.
        pool = max(10, 2 * group.max_parallel_resets + 4)
        http = http_client.EnvironmentCachingSession()
        for scheme in ('http://', 'https://'):
            http.mount(scheme, ks_session.TCPKeepAliveAdapter(
                pool_connections=4, pool_maxsize=pool))
        self._http = http
        session = ks_loading.load_session_from_conf_options(
            conf, GROUP, auth=auth, session=http,
            timeout=(group.timeout if group.timeout is not None
                     else group.request_timeout))
        try:
            # Our own retry loop below replaces keystoneauth's: retries of
            # retries would multiply the time a dead Nova holds us.
            self._adapter = ks_loading.load_adapter_from_conf_options(
                conf, GROUP, session=session, auth=auth,
                connect_retries=0, status_code_retries=0)
        except TypeError as exc:
            raise exceptions.ConfigurationError('[nova]', None,
                                                str(exc)) from None
        self._lock = threading.Lock()
        self._max_version: tuple[int, int] | None = None
        self._service_ids: dict[tuple[str, str], str] = {}
        # Whether the last call found Nova unavailable: an outage is logged
        # once when it starts and once when it ends, not once per call.
        self._unavailable = False

    # -- discovery ---------------------------------------------------------

    def max_microversion(self) -> tuple[int, int]:
        """The highest compute API microversion Nova supports.

        Read from the endpoint's version document by keystoneauth1's
        discovery the first time, then cached until a call fails (Nova may
        have been upgraded or rolled back meanwhile). A Nova without
        microversions gives ``(2, 0)``.

        :raises NovaAuthError, NovaUnavailable, NovaError: as for any call
        """
        with self._lock:
            if self._max_version is not None:
                return self._max_version
        endpoint = self._call('find the compute endpoint',
                              self._adapter.get_endpoint)
        if not endpoint:
            raise exceptions.NovaError(
                'no compute endpoint found: check [nova] service_type, '
                'valid_interfaces and region_name against the Keystone '
                'catalog, or set endpoint_override')
        # Discover rather than Adapter.get_endpoint_data(): the latter
        # swallows a failed version request and answers "no
        # microversions", which would make a Nova outage look like a
        # Nova too old to force a service down.
        disc = self._call(
            f'read the version document at {urls.redact(endpoint)}',
            lambda: ks_discover.Discover(self._adapter.session, endpoint,
                                         authenticated=False))
        found = (2, 0)
        for data in disc.version_data():
            top = data['max_microversion']
            if top and data['version'][0] == 2:
                found = max(found, (int(top[0]), int(top[1])))
        with self._lock:
            self._max_version = found
        LOG.info('Nova at %s supports compute API microversions up to '
                 '%d.%d', urls.redact(endpoint), *found)
        return found

    def _forget_version(self) -> None:
        with self._lock:
            self._max_version = None

    # -- calls -------------------------------------------------------------

    def force_down(self, host: str, down: bool = True,
                   binary: str = 'nova-compute') -> None:
        """Mark ``binary`` on ``host`` forced down (or clear the flag).

        A forced-down service is down for Nova at once, without waiting for
        missed heartbeats, so evacuation can start. Uses the service UUID
        (microversion 2.53) when Nova has it, else the older
        ``os-services/force-down`` call (2.11).

        :raises NovaError: if Nova does not know the service, or is older
            than 2.11 (no force-down at all)
        """
        top = self.max_microversion()
        if top >= SERVICE_UUIDS:
            self._force_down_by_id(host, down, binary)
        elif top >= FORCE_DOWN:
            resp = self._request(
                'PUT', '/os-services/force-down', microversion='2.11',
                json={'host': host, 'binary': binary, 'forced_down': down},
                what=f'force {binary} on {host} '
                     f'{"down" if down else "up"}',
                passthrough=(404,))
            if resp.status_code == 404:
                raise self._unknown_service(host, binary,
                                            _nova_message(resp))
        else:
            raise exceptions.NovaError(
                f'Nova supports compute API microversions up to '
                f'{top[0]}.{top[1]}, but forcing a service down needs 2.11 '
                f'(Liberty) or later: upgrade Nova, or run without the '
                f'controller')
        LOG.info('Nova: %s on host %s %s', binary, host,
                 'forced down' if down else 'no longer forced down')

    def is_forced_down(self, host: str, binary: str = 'nova-compute'
                       ) -> bool | None:
        """Whether Nova has ``binary`` on ``host`` forced down now.

        :returns: None if Nova is too old to say (before 2.11) or does not
            list the service
        """
        if self.max_microversion() < FORCE_DOWN:
            return None
        resp = self._request(
            'GET', '/os-services', microversion='2.11',
            params={'binary': binary, 'host': host},
            what=f'read the {binary} service of host {host}')
        for service in resp.json().get('services', []):
            if service.get('host') == host and (
                    service.get('binary') == binary):
                return bool(service.get('forced_down'))
        return None

    def _force_down_by_id(self, host: str, down: bool, binary: str) -> None:
        what = f'force {binary} on {host} {"down" if down else "up"}'
        for attempt in (1, 2):
            service_id = self._service_id(host, binary)
            resp = self._request(
                'PUT', f'/os-services/{service_id}', microversion='2.53',
                json={'forced_down': down}, what=what, passthrough=(404,))
            if resp.status_code != 404:
                return
            # The service was deleted and registered again under a new
            # UUID since we cached it: look it up once more.
            with self._lock:
                self._service_ids.pop((host, binary), None)
        raise self._unknown_service(host, binary, _nova_message(resp))

    def _service_id(self, host: str, binary: str) -> str:
        with self._lock:
            cached = self._service_ids.get((host, binary))
        if cached:
            return cached
        resp = self._request(
            'GET', '/os-services', microversion='2.53',
            params={'binary': binary, 'host': host},
            what=f'find the {binary} service of host {host}')
        services = [s for s in resp.json().get('services', [])
                    if s.get('host') == host and s.get('binary') == binary]
        if not services:
            raise self._unknown_service(host, binary, 'not in the service '
                                                      'list')
        service_id = str(services[0]['id'])
        with self._lock:
            self._service_ids[(host, binary)] = service_id
        return service_id

    @staticmethod
    def _unknown_service(host: str, binary: str,
                         detail: str) -> exceptions.NovaError:
        return exceptions.NovaError(
            f'Nova knows no {binary} service on host {host!r} ({detail}): '
            f'check that the monitor reports hosts by the names `openstack '
            f'compute service list` shows')

    def reset_state(self, server_id: str, state: str = 'error') -> bool:
        """Set a server's state (``error`` by default), as an admin may.

        :returns: True if reset, False if the server no longer exists (it
            was deleted meanwhile, which is no error)
        """
        resp = self._request(
            'POST', f'/servers/{server_id}/action', microversion='2.1',
            json={'os-resetState': {'state': state}},
            what=f'reset server {server_id} to {state}', passthrough=(404,))
        if resp.status_code == 404:
            LOG.info('Server %s is gone (deleted meanwhile); not resetting '
                     'its state', server_id)
            return False
        return True

    def list_servers(self, host: str | None = None, page_size: int = 1000
                     ) -> typing.Iterator[dict]:
        """Every server of every tenant (on ``host`` if given).

        Follows Nova's pagination (``servers_links`` rel=next), so Nova's
        ``max_limit`` below ``page_size`` only costs more requests.

        :returns: Nova's server dicts (``GET /servers/detail``)
        """
        params: dict[str, typing.Any] = {'all_tenants': 1,
                                         'limit': page_size}
        if host:
            params['host'] = host
        seen: set[str] = set()
        while True:
            resp = self._request('GET', '/servers/detail',
                                 microversion='2.1', params=params,
                                 what='list servers' +
                                      (f' on host {host}' if host else ''))
            body = resp.json()
            yield from body.get('servers', [])
            marker = None
            for link in body.get('servers_links', []):
                if link.get('rel') == 'next':
                    # Only the marker is taken from the link: its host is
                    # the one Nova believes it has, not necessarily the one
                    # we reach it by.
                    query = urllib.parse.urlsplit(link.get('href', '')).query
                    marker = urllib.parse.parse_qs(query).get(
                        'marker', [None])[0]
            if not marker:
                return
            if marker in seen:
                LOG.warning('Nova repeated the page marker %s while '
                            'listing servers; stopping there', marker)
                return
            seen.add(marker)
            params['marker'] = marker

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- the request loop --------------------------------------------------

    def _request(self, method: str, path: str, *, microversion: str,
                 what: str, json: typing.Any = None,
                 params: dict | None = None,
                 passthrough: typing.Container[int] = ()
                 ) -> requests.Response:
        """Send one request with timeout, retries and error mapping.

        :param passthrough: error statuses the caller handles itself
        """
        def send() -> requests.Response:
            resp = self._adapter.request(
                path, method, json=json, params=params,
                microversion=microversion,
                timeout=self.conf[GROUP].request_timeout, raise_exc=False)
            status = resp.status_code
            if status < 400 or status in passthrough:
                return resp
            message = _nova_message(resp)
            if status in (401, 403):
                raise ks_exc.from_response(resp, method, path)
            if status >= 500:
                raise _Retriable(f'HTTP {status}: {message}')
            if status in (400, 406) and 'version' in message.lower():
                # Refused microversion: Nova changed under us.
                self._forget_version()
            raise exceptions.NovaError(
                f'Nova refused to {what} (HTTP {status}): {message}')
        return self._call(what, send)

    def _set_available(self, available: bool) -> None:
        with self._lock:
            was_unavailable, self._unavailable = (self._unavailable,
                                                  not available)
        if available and was_unavailable:
            LOG.info('Nova answers again')

    def _call(self, what: str, func: typing.Callable[[], _T]) -> _T:
        """Run ``func`` with the retry policy and our exception types."""
        group = self.conf[GROUP]
        attempts = group.retries + 1

        def attempt() -> _T:
            try:
                return func()
            except exceptions.NovaError:
                self._set_available(True)  # it answered, if with a no
                raise
            except ks_exc.HttpError as exc:
                if exc.http_status in (401, 403):
                    LOG.error('Nova refused our credentials trying to %s '
                              '(HTTP %s)', what, exc.http_status)
                    raise exceptions.NovaAuthError(
                        f'could not {what}: Nova or Keystone refused the '
                        f'credentials (HTTP {exc.http_status}). Check the '
                        f'[nova] auth options, and that the service user '
                        f'has a role Nova\'s policy allows (admin, by '
                        f'default) to force services down and reset '
                        f'servers') from None
                if (exc.http_status or 0) < 500:
                    raise exceptions.NovaError(
                        f'could not {what}: {exc}') from None
                raise _Retriable(str(exc)) from None
            except ks_exc.ConnectionError as exc:
                raise _Retriable(str(exc)) from None
            except ks_exc.DiscoveryFailure as exc:
                raise exceptions.NovaError(
                    f'could not {what}: {exc}') from None
            except ks_exc.ClientException as exc:
                # EndpointNotFound, a broken auth_url...: configuration.
                raise exceptions.NovaError(
                    f'could not {what}: {exc}. Check the [nova] '
                    f'options') from None

        def log_retry(attempt: int, exc: BaseException, delay: float
                      ) -> None:
            LOG.debug('Nova: could not %s (%s); retry %d/%d in %.2f s',
                      what, exc, attempt, attempts - 1, delay)

        try:
            result = retry.call(
                attempt,
                backoff=retry.Backoff(min(group.retry_backoff, MAX_BACKOFF),
                                      MAX_BACKOFF),
                retry_if=lambda exc: isinstance(exc, _Retriable),
                attempts=attempts, before_sleep=log_retry)
        except _Retriable as exc:
            problem = str(exc)
        else:
            self._set_available(True)
            return result
        with self._lock:
            first, self._unavailable = not self._unavailable, True
        (LOG.error if first else LOG.debug)(
            'Nova is unavailable: could not %s after %d attempt(s): %s',
            what, attempts, problem)
        self._forget_version()
        raise exceptions.NovaUnavailable(
            f'could not {what}: Nova did not answer after {attempts} '
            f'attempt(s) ({problem})')
