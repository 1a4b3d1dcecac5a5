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

"""The host event of one detection, whatever transformer reported it.

A Doctor monitor's report, an Alertmanager alert and a Nova service
notification all say that a host went down (or came back). Each becomes
the same ``compute.host.down`` or ``compute.host.up`` event, whose message
id is derived from the detection, so that a repeated report keeps its id.
"""

from __future__ import annotations

import datetime
import json
import typing
import uuid

from doctor_plugin import event as event_model

#: ``details.status`` and the event type each value produces.
EVENT_TYPE_BY_STATUS = {
    'down': 'compute.host.down',
    'up': 'compute.host.up',
}

#: A monitor's reports that are not a host's failure or recovery: a host
#: silent on some heartbeat planes only (degraded, restored), and the
#: monitor itself cut off from every host it watches (isolated,
#: connected). The reported type → its statuses.
MONITOR_STATUSES = {
    'compute.host.degraded': ('degraded', 'restored'),
    'doctor.monitor.isolated': ('isolated', 'connected'),
}

#: Namespace of :func:`detection_id`. Never change it: every id would too.
DETECTION_NAMESPACE = uuid.UUID('5c53d5bf-b67d-4999-b85f-43b5785a8215')

_TEXT = event_model.TraitType.TEXT
_DATETIME = event_model.TraitType.DATETIME


def detection_id(monitor: str, monitor_event_id: str, host: str,
                 status: str) -> str:
    """Return the message id of one detection.

    A monitor that reports the same detection again (a retry, a second
    inspector) produces the same id, so consumers can drop the repeat.
    """
    name = json.dumps([monitor, monitor_event_id, host, status])
    return str(uuid.uuid5(DETECTION_NAMESPACE, name))


def host_event(host: str, status: str, monitor: str, monitor_event_id: str,
               detected: datetime.datetime, generated: datetime.datetime,
               extra: typing.Mapping[str, str], raw: dict,
               event_type: str | None = None) -> event_model.Event:
    """The host event of one detection, whatever reported it.

    ``compute.host.down`` or ``compute.host.up`` after ``status`` (or
    ``event_type``, one of :data:`MONITOR_STATUSES`), with traits
    ``host``, ``status``, ``monitor``, ``monitor_event_id``, ``time``
    (when it was detected) and the text traits of ``extra``; the message
    id is :func:`detection_id`.
    """
    traits = [
        event_model.Trait.of('host', _TEXT, host),
        event_model.Trait.of('status', _TEXT, status),
        event_model.Trait.of('monitor', _TEXT, monitor),
        event_model.Trait.of('monitor_event_id', _TEXT, monitor_event_id),
        event_model.Trait.of('time', _DATETIME, detected),
    ]
    traits.extend(event_model.Trait.of(key, _TEXT, value)
                  for key, value in extra.items())
    return event_model.Event(
        message_id=detection_id(monitor, monitor_event_id, host, status),
        event_type=event_type or EVENT_TYPE_BY_STATUS[status],
        generated=generated,
        traits=traits,
        raw=raw)
