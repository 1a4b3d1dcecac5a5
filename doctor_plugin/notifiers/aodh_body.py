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

"""The body Aodh's REST alarm notifier posts, and alarms made of events.

A webhook consumer that takes Aodh's alarm actions (a VNF manager) takes
our POSTs unchanged: :func:`encode` writes an
:class:`~doctor_plugin.notifiers.base.AlarmNotification` as that JSON
body. A pipeline sink with an ``http(s)://`` notifier has events, not
alarms: :func:`alarm_from_event` is the one place that makes up the
alarm Aodh's event evaluator would report for an event.
"""

from __future__ import annotations

import datetime
import json
import typing
import uuid

from doctor_plugin import event as event_model
from doctor_plugin.notifiers import base

#: Aodh's alarm severities.
SEVERITIES = ('low', 'moderate', 'critical')


def encode(notification: base.AlarmNotification) -> bytes:
    """The JSON body of ``notification``, as Aodh posts it."""
    return json.dumps(notification.as_body(),
                      default=_json_default).encode('utf-8')


def alarm_from_event(event: event_model.Event, target: str,
                     default_severity: str) -> base.AlarmNotification:
    """The alarm Aodh's event evaluator would report for ``event``.

    :param target: the webhook URL without credentials: with the event
        type it names the alarm, so its id is stable across restarts
        and credential rotations
    :param default_severity: for events whose ``severity`` trait is not
        one of Aodh's
    """
    severity = str(event.trait('severity') or '').lower()
    if severity not in SEVERITIES:
        severity = default_severity
    status = str(event.trait('status') or '').lower()
    if not event.event_type.endswith('.down') and status == 'up':
        previous, current = 'alarm', 'ok'
    else:
        previous, current = 'ok', 'alarm'
    alarm_id = uuid.uuid5(uuid.NAMESPACE_URL,
                          '\n'.join((target, event.event_type)))
    return base.AlarmNotification(
        alarm_id=str(alarm_id),
        alarm_name=f'doctor:{event.event_type}',
        severity=severity,
        previous=previous,
        current=current,
        reason=(f'Event <id={event.message_id},'
                f'event_type={event.event_type}> received.'),
        reason_data={'type': 'event', 'event': event.serialize()})


def _json_default(value: typing.Any) -> typing.Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f'{type(value).__name__} is not JSON serialisable')
