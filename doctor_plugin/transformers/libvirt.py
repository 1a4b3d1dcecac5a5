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

"""Instance lifecycle events from libvirt: ``POST /events/libvirt``.

A libvirt event listener on a compute host
(``virConnectDomainEventRegisterAny`` with
``VIR_DOMAIN_EVENT_ID_LIFECYCLE``) posts what it gets, one object or a
list::

    {"host": "compute-1",
     "domain": {"uuid": "6f3a1c2e-...", "name": "instance-0000002a"},
     "event": "stopped", "detail": "crashed",
     "time": "2026-11-25T10:00:00.123456Z"}

``event`` and ``detail`` are libvirt's names (``crashed``, ``stopped`` /
``failed``, ...) or its integer codes. Each becomes a
``compute.instance.update`` event, the one Nova sends and Doctor's per-VM
Aodh alarms match: ``instance_id`` (the domain's UUID, which is Nova's
instance id), ``host``, ``state`` (``error`` for a crash or a failure,
``stopped``, ``paused`` or ``active`` otherwise), ``cause`` (``event/detail``)
and ``monitor`` ``libvirt``; the inspector adds the instance's project from
its topology.
"""

from __future__ import annotations

import typing
import uuid

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.transformers import base
from doctor_plugin.transformers import payload as checks

#: virDomainEventType, in libvirt's order (its integer codes).
EVENTS = ('defined', 'undefined', 'started', 'suspended', 'resumed',
          'stopped', 'shutdown', 'pmsuspended', 'crashed')

#: virDomainEventStoppedDetailType, in libvirt's order.
STOPPED_DETAILS = ('shutdown', 'destroyed', 'crashed', 'migrated', 'saved',
                   'failed', 'from_snapshot')

#: What the instance's state becomes: by (event, detail), then by event.
_STATE_BY_DETAIL: dict[tuple[str, str | None], str] = {
    ('stopped', 'crashed'): 'error', ('stopped', 'failed'): 'error'}
_STATE_BY_EVENT = {'crashed': 'error', 'stopped': 'stopped',
                   'shutdown': 'stopped', 'suspended': 'paused',
                   'pmsuspended': 'suspended', 'started': 'active',
                   'resumed': 'active'}

#: Namespace of the events' ids (stable for a repeated post).
_NAMESPACE = uuid.UUID('2b1e6f7c-9d4a-4e3b-8c5f-7a6d9e0b1c2d')

_TEXT = event_model.TraitType.TEXT
_DATETIME = event_model.TraitType.DATETIME


def _name(value: typing.Any, names: tuple[str, ...], path: str,
          what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(names):
            return names[value]
    elif isinstance(value, str) and value.lower() in names:
        return value.lower()
    raise exceptions.InvalidPayload(
        path, f'must be a libvirt {what} ({", ".join(names)}, or its '
              f'code 0-{len(names) - 1}), got {checks.shown(value)}')


class LibvirtLifecycleTransformer(base.TransformerBase):
    """libvirt domain lifecycle events → ``compute.instance.update``."""

    def transform(self, payload: typing.Any,
                  metadata: typing.Mapping[str, typing.Any] | None = None
                  ) -> list[event_model.Event]:
        payload = checks.event_list(
            payload, 'expected a libvirt lifecycle event object or a '
                     'non-empty list of them')
        if len(payload) > checks.MAX_EVENTS:
            raise exceptions.InvalidPayload(
                '', f'at most {checks.MAX_EVENTS} events per request')
        checks.check_document(payload)
        generated = event_model.utcnow()
        events = []
        for index, item in enumerate(payload):
            path = str(index)
            if not isinstance(item, dict):
                raise exceptions.InvalidPayload(
                    path, f'each event must be an object, got '
                          f'{checks.json_type(item)}')
            host = checks.check_text(item.get('host'), f'{path}.host')
            domain = item.get('domain')
            if not isinstance(domain, dict):
                raise exceptions.InvalidPayload(
                    f'{path}.domain', 'must be an object with the '
                                      "domain's uuid")
            instance = checks.check_text(domain.get('uuid'),
                                         f'{path}.domain.uuid')
            event = _name(item.get('event'), EVENTS, f'{path}.event',
                          'lifecycle event')
            detail = item.get('detail')
            if event == 'stopped' and detail is not None:
                detail = _name(detail, STOPPED_DETAILS, f'{path}.detail',
                               'stopped detail')
            elif detail is not None:
                if isinstance(detail, int) and not isinstance(detail, bool):
                    detail = str(detail)
                detail = checks.check_text(detail, f'{path}.detail')
            when = generated
            if 'time' in item:
                text = checks.check_text(item['time'], f'{path}.time')
                try:
                    when = event_model.parse_datetime(text)
                except (ValueError, OverflowError):
                    raise exceptions.InvalidPayload(
                        f'{path}.time', f'must be an ISO 8601 time, got '
                                        f'{text!r}') from None
            state = _STATE_BY_DETAIL.get((event, detail),
                                         _STATE_BY_EVENT.get(event))
            if state is None:
                # defined/undefined: no change of the instance's state.
                continue
            cause = f'{event}/{detail}' if detail else event
            traits = [
                event_model.Trait('instance_id', _TEXT, instance),
                event_model.Trait('host', _TEXT, host),
                event_model.Trait('state', _TEXT, state),
                event_model.Trait('cause', _TEXT, cause),
                event_model.Trait('monitor', _TEXT, 'libvirt'),
                event_model.Trait('time', _DATETIME, when),
            ]
            if isinstance(domain.get('name'), str) and domain['name']:
                traits.append(event_model.Trait(
                    'domain', _TEXT,
                    checks.check_text(domain['name'],
                                      f'{path}.domain.name')))
            events.append(event_model.Event(
                message_id=str(uuid.uuid5(_NAMESPACE, '/'.join(
                    (host, instance, cause, when.isoformat())))),
                event_type='compute.instance.update', generated=generated,
                traits=traits, raw=item))
        return events
