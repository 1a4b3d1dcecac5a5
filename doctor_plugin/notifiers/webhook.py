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

"""POST Aodh's alarm webhook body to a URL: ``http://`` and ``https://``.

A consumer (a VNF manager) that already takes Aodh's alarm actions takes
these unchanged. As an alarm action (:class:`WebhookAction`) the alarm's
transition is posted once. As a pipeline sink (:class:`WebhookNotifier`)
each event is posted as the alarm Aodh's event evaluator would report
for it (:func:`doctor_plugin.notifiers.aodh_body.alarm_from_event`).

Query parameters starting with ``doctor-`` set options for this URL only
and are not sent (:mod:`doctor_plugin.notifiers.webhook_settings`);
other query parameters are kept. The POSTs go through
:class:`doctor_plugin.common.http.Client`. Both classes are recordable:
each body is one delivery, in order per alarm id.
"""

from __future__ import annotations

import time
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import http
from doctor_plugin.common import retry
from doctor_plugin.delivery import recordable
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import aodh_body
from doctor_plugin.notifiers import base
from doctor_plugin.notifiers import webhook_opts
from doctor_plugin.notifiers import webhook_settings
from doctor_plugin import signing

LOG = logging.getLogger(__name__)

#: Kept here for their users: :mod:`doctor_plugin.opts`, the tests.
GROUP = webhook_opts.GROUP
OPTS = webhook_opts.OPTS
SEVERITIES = aodh_body.SEVERITIES
URL_PARAMS = webhook_opts.URL_PARAMS

#: Statuses worth retrying: the consumer or a proxy in front of it failed.
_RETRY_STATUSES = frozenset({500, 502, 503, 504})


#: Between the attempts of one POST, as urllib3 waited: the first retry
#: at once, then 0.2 s, 0.4 s...
RETRY_BACKOFF = retry.Backoff(0.1, 120.0, jitter=False, first_at_once=True)


class _RetryStatus(Exception):
    """A 5xx answer, worth another attempt."""

    def __init__(self, response: http.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _RetryStatus) or (
        isinstance(exc, http.HTTPError) and exc.retryable)


class _Webhook(base.Plugin):
    """A webhook target: its settings, its HTTP client, and the POST.

    A connection that could not be made, or a 500/502/503/504 answer,
    is retried up to ``webhook_max_retries`` times (at once, then after
    0.2 s, 0.4 s, ...). A response that timed out or was cut is not: the
    consumer may have acted on it.
    """

    def __init__(self, conf: cfg.ConfigOpts, url: str,
                 context: typing.Any = None) -> None:
        super().__init__(conf, url, context=context)
        opts = conf.notifier
        self.settings = webhook_settings.TargetSettings.from_url(url, opts)
        self.safe_url = self.settings.safe_url
        self.target_url = self.settings.target_url
        self.timeout = self.settings.timeout
        self.default_severity = opts.default_severity
        #: What the POSTs go through: straight to the consumer over
        #: kept-alive connections, or through the environment's proxy.
        self.client = http.Client(self.settings.stable_url, self.timeout,
                                  self.settings.tls, opts.webhook_pool_size)
        self._headers = http.default_headers(self.target_url)
        self._headers['Content-Type'] = 'application/json'
        self._max_retries = opts.webhook_max_retries
        self._signing_key = (opts.webhook_signing_key or '').encode()

    def send(self, prepared: typing.Any) -> None:
        """POST one recorded body (``payload``, ``event_id``, ``label``)."""
        self._post(prepared.payload, prepared.event_id, prepared.label)

    def _post(self, body: bytes, event_id: str, name: str) -> None:
        request_id = f'req-{uuid.uuid4()}'
        headers = self._headers.copy()
        headers['x-openstack-request-id'] = request_id
        headers['X-Doctor-Event-Id'] = event_id
        if self._signing_key:
            signing.sign(self._signing_key, body, headers)

        def attempt() -> http.Response:
            response = self.client.request('POST', body, headers)
            if response.status in _RETRY_STATUSES:
                raise _RetryStatus(response)
            return response

        started = time.monotonic()
        try:
            response = retry.call(attempt, backoff=RETRY_BACKOFF,
                                  retry_if=_retryable,
                                  attempts=self._max_retries + 1)
        except _RetryStatus as exc:
            response = exc.response
        except http.HTTPError as exc:
            raise exceptions.DeliveryError(
                f'could not post alarm {name} to webhook '
                f'{self.safe_url}: {http.describe(exc, self.timeout)}. '
                f'{_advice(exc)}') from exc
        elapsed = time.monotonic() - started
        if not 200 <= response.status < 300:
            raise exceptions.DeliveryError(
                f'webhook {self.safe_url} refused alarm {name}: '
                f'HTTP {response.status} {response.reason}'
                f'{response.excerpt()}. {_status_advice(response.status)}')
        # Debug: at info, the record of each of a rack's thousands of
        # deliveries cost more CPU than the delivery.
        LOG.debug('Delivered alarm %(name)s (event %(event)s) to %(url)s: '
                  'HTTP %(status)d in %(elapsed).3fs, request-id '
                  '%(request_id)s',
                  {'name': name, 'event': event_id,
                   'url': self.safe_url, 'status': response.status,
                   'elapsed': elapsed, 'request_id': request_id})

    def close(self) -> None:
        self.client.close()


def _prepared(notification: base.AlarmNotification,
              event_id: str) -> recordable.Prepared:
    return recordable.Prepared(key=notification.alarm_id,
                               event_id=event_id,
                               label=notification.alarm_name,
                               payload=aodh_body.encode(notification))


class WebhookAction(_Webhook, base.AlarmAction):
    """An alarm action: POST the transition, as Aodh's REST notifier."""

    def encode(self, item: base.AlarmNotification
               ) -> list[recordable.Prepared]:
        """The alarm's body, keyed by its event's message_id."""
        event = (item.reason_data or {}).get('event')
        event_id = (event.get('message_id') if isinstance(event, dict)
                    else None) or item.alarm_id
        return [_prepared(item, event_id)]

    def notify(self, notification: base.AlarmNotification) -> None:
        recordable.send_all(self, notification)


class WebhookNotifier(_Webhook, base.EventNotifier):
    """A pipeline sink: POST each event as the alarm it would raise."""

    def encode(self, item: typing.Sequence[event_model.Event]
               ) -> list[recordable.Prepared]:
        """One body per event, each an alarm synthesised from it."""
        return [_prepared(self.alarm_from_event(e), e.message_id)
                for e in item]

    def notify(self, events: typing.Sequence[event_model.Event]) -> None:
        recordable.send_all(self, events)

    def alarm_from_event(self, event: event_model.Event
                         ) -> base.AlarmNotification:
        """The alarm Aodh's event evaluator would report for ``event``."""
        return aodh_body.alarm_from_event(
            event, self.settings.stable_url, self.default_severity)


def _advice(exc: http.HTTPError) -> str:
    return http.advice(
        exc, 'the consumer',
        tls_fix="[notifier] webhook_ca_bundle, or add "
                "doctor-ssl-verify=false to the URL for a test consumer",
        timeout_fix='raise [notifier] webhook_timeout (per URL: '
                    'doctor-timeout=)')


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
