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

"""Turn Nova's versioned ``service.update`` notifications into Events.

Nova sends ``service.update`` (payload ``ServiceStatusPayload`` 1.x) when a
service's ``disabled``, ``disabled_reason`` or ``forced_down`` changes. For
a ``nova-compute`` service that gives the host's state as Nova sees it:

* ``forced_down`` -> ``compute.host.down``, cause ``forced_down``;
* ``last_seen_up`` older than ``[inspector] service_down_time`` ->
  ``compute.host.down``, cause ``heartbeat_timeout`` (Nova's own
  servicegroup check: the service stopped reporting in);
* ``disabled`` -> ``compute.host.disabled``: an operator took the host out
  of scheduling, which is not a fault;
* otherwise -> ``compute.host.up``.

Updates of other services (scheduler, conductor, ...) give no event.
"""

from __future__ import annotations

import datetime
import json
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.transformers import base
from doctor_plugin.transformers import host_events
from doctor_plugin.transformers import payload as checks

LOG = logging.getLogger(__name__)

GROUP = 'inspector'

OPTS = [
    cfg.IntOpt('service_down_time',
               default=60,
               min=1,
               help="Seconds after a nova-compute service's last heartbeat "
                    "(the last_seen_up of its service.update notification) "
                    "after which the service.update transformer treats "
                    "its host as down. It means the same as Nova's "
                    "[DEFAULT]service_down_time; set the two to the same "
                    "value."),
]

#: The only service whose state is the state of a compute host.
COMPUTE_BINARY = 'nova-compute'

#: The versioned payload this transformer reads, and its major version.
PAYLOAD_NAME = 'ServiceStatusPayload'
PAYLOAD_MAJOR_VERSION = 1

#: The ``monitor`` trait of every event from this transformer.
MONITOR = 'nova'

CAUSE_FORCED_DOWN = 'forced_down'
CAUSE_HEARTBEAT_TIMEOUT = 'heartbeat_timeout'

_TEXT = event_model.TraitType.TEXT
_DATETIME = event_model.TraitType.DATETIME


def _flag(value: bool) -> str:
    return 'true' if value else 'false'


def _check_bool(data: dict, key: str, path: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise exceptions.InvalidPayload(
            f'{path}.{key}',
            f'must be true or false, got {checks.json_type(value)}')
    return value


def _optional_time(container: typing.Mapping[str, typing.Any], key: str,
                   field: str) -> datetime.datetime | None:
    value = container.get(key)
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return event_model.parse_datetime(value)
    expected = "null or an ISO 8601 time such as '2012-10-29T13:42:05Z'"
    if not isinstance(value, str):
        raise exceptions.InvalidPayload(
            field, f'must be {expected}, got {checks.json_type(value)}')
    try:
        return event_model.parse_datetime(checks.check_text(value, field))
    except (ValueError, OverflowError):
        raise exceptions.InvalidPayload(
            field, f'must be {expected}, got {value[:64]!r}') from None


def _service_data(payload: typing.Any) -> dict:
    """Check the versioned-object envelope and return its data."""
    if not isinstance(payload, dict):
        raise exceptions.InvalidPayload(
            '', f'the payload must be a Nova versioned notification payload '
                f'(an object), got {checks.json_type(payload)}')
    name = payload.get('nova_object.name')
    if name != PAYLOAD_NAME:
        shown = (repr(name[:64]) if isinstance(name, str)
                 else checks.json_type(name))
        raise exceptions.InvalidPayload(
            'nova_object.name',
            f'must be {PAYLOAD_NAME!r}, got {shown}; the service.update '
            f'transformer reads Nova\'s versioned notifications (Nova\'s '
            f'[notifications]notification_format = versioned or both)')
    version = payload.get('nova_object.version')
    if (not isinstance(version, str)
            or version.split('.')[0] != str(PAYLOAD_MAJOR_VERSION)):
        shown = (repr(version[:64]) if isinstance(version, str)
                 else checks.json_type(version))
        raise exceptions.InvalidPayload(
            'nova_object.version',
            f'must be a {PAYLOAD_MAJOR_VERSION}.x version, got {shown}')
    data = payload.get('nova_object.data')
    if not isinstance(data, dict):
        raise exceptions.InvalidPayload(
            'nova_object.data',
            f'must be an object, got {checks.json_type(data)}')
    return data


class ServiceUpdateTransformer(base.TransformerBase):
    """Events from Nova's versioned ``service.update`` notifications.

    Traits: ``host``, ``binary``, ``status`` (``down``, ``disabled`` or
    ``up``), ``cause`` (down only), ``service_id`` (payload 1.1+),
    ``forced_down`` and ``disabled`` (``'true'``/``'false'``),
    ``disabled_reason`` and ``last_seen_up`` when set, ``time`` (the
    notification's timestamp), ``monitor`` (``'nova'``) and
    ``monitor_event_id`` (the notification's message id).
    """

    event_types = ('service.update',)

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)

    def transform(self, payload: typing.Any,
                  metadata: typing.Mapping[str, typing.Any] | None = None
                  ) -> list[event_model.Event]:
        checks.check_document(payload)
        data = _service_data(payload)
        path = 'nova_object.data'
        binary = checks.check_text(data.get('binary'), f'{path}.binary')
        if binary != COMPUTE_BINARY:
            LOG.debug('Ignoring service.update of %(binary)s on %(host)s',
                      {'binary': binary, 'host': data.get('host')})
            return []
        host = checks.check_text(data.get('host'), f'{path}.host')
        forced_down = _check_bool(data, 'forced_down', path)
        disabled = _check_bool(data, 'disabled', path)
        disabled_reason = data.get('disabled_reason')
        if disabled_reason:
            # Nova's free text; empty is as good as null and gives no trait.
            checks.check_text(disabled_reason, f'{path}.disabled_reason')
        elif disabled_reason not in (None, ''):
            raise exceptions.InvalidPayload(
                f'{path}.disabled_reason',
                f'must be null or a string, got '
                f'{checks.json_type(disabled_reason)}')
        service_id = data.get('uuid')
        if service_id is not None:
            checks.check_text(service_id, f'{path}.uuid')
            try:
                uuid.UUID(service_id)
            except ValueError:
                raise exceptions.InvalidPayload(
                    f'{path}.uuid',
                    f'must be a UUID, got {service_id!r}') from None
        last_seen_up = _optional_time(data, 'last_seen_up',
                                      f'{path}.last_seen_up')

        metadata = metadata or {}
        sent_at = _optional_time(metadata, 'timestamp', 'metadata.timestamp')
        notification_id = metadata.get('message_id')
        if notification_id is not None:
            checks.check_text(notification_id, 'metadata.message_id')
        generated = event_model.utcnow()
        now = sent_at or generated

        cause = None
        if forced_down:
            status, cause = 'down', CAUSE_FORCED_DOWN
        elif (last_seen_up is not None and self._heartbeat_expired(
                last_seen_up, now)):
            status, cause = 'down', CAUSE_HEARTBEAT_TIMEOUT
        elif disabled:
            status = 'disabled'
        else:
            status = 'up'

        if notification_id is None:
            # No message id to dedupe on: derive one from the host, its
            # state and the notification's time, so that a redelivered
            # notification keeps its id (when it carries a timestamp).
            notification_id = str(uuid.uuid5(
                host_events.DETECTION_NAMESPACE,
                json.dumps([host, status, now.isoformat()])))

        traits = [
            event_model.Trait.of('host', _TEXT, host),
            event_model.Trait.of('binary', _TEXT, binary),
            event_model.Trait.of('status', _TEXT, status),
        ]
        if cause:
            traits.append(event_model.Trait.of('cause', _TEXT, cause))
        if service_id:
            traits.append(event_model.Trait.of('service_id', _TEXT,
                                               service_id))
        traits += [
            event_model.Trait.of('forced_down', _TEXT, _flag(forced_down)),
            event_model.Trait.of('disabled', _TEXT, _flag(disabled)),
        ]
        if disabled_reason:
            traits.append(event_model.Trait.of('disabled_reason', _TEXT,
                                               disabled_reason))
        if last_seen_up is not None:
            traits.append(event_model.Trait.of('last_seen_up', _DATETIME,
                                               last_seen_up))
        traits += [
            event_model.Trait.of('time', _DATETIME, now),
            event_model.Trait.of('monitor', _TEXT, MONITOR),
            event_model.Trait.of('monitor_event_id', _TEXT, notification_id),
        ]

        LOG.debug('service.update: nova-compute on %(host)s is %(status)s '
                  '(cause %(cause)s)',
                  {'host': host, 'status': status, 'cause': cause})
        return [event_model.Event(
            message_id=host_events.detection_id(MONITOR, notification_id,
                                                host, status),
            event_type=f'compute.host.{status}',
            generated=generated,
            traits=traits,
            raw=payload)]

    def _heartbeat_expired(self, last_seen_up: datetime.datetime,
                           now: datetime.datetime) -> bool:
        # As Nova's servicegroup DB driver: abs(), so a heartbeat stamped
        # far in the future (clock skew) also counts as down.
        elapsed = (now - last_seen_up).total_seconds()
        return abs(elapsed) > self.conf.inspector.service_down_time
