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

"""Turn OPNFV Doctor inspector events (``PUT /events``) into Events.

Doctor's monitors report host faults to the inspector as a JSON list of
events; the sample monitor sends a one-element list::

    [{"id": "monitor_sample_id1",
      "time": "2017-04-22T12:00:00.123456",
      "type": "compute.host.down",
      "details": {"hostname": "compute-1",
                  "status": "down",
                  "monitor": "monitor_sample",
                  "monitor_event_id": "monitor_sample_event1"}}]

Vitrage's Doctor datasource also sends ``source``, ``cause``, ``severity``
and ``monitor_id`` in ``details``; they become traits when present. Other
keys in ``details`` are ignored.

The body is validated as a whole before any event is built: one bad element
rejects the request, so a monitor never has half a report accepted.
"""

from __future__ import annotations

import datetime
import typing

from oslo_log import log as logging

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.transformers import base
from doctor_plugin.transformers import host_events
from doctor_plugin.transformers import payload as checks

LOG = logging.getLogger(__name__)

#: The ``type`` values Doctor's inspector API defines.
SUPPORTED_TYPES = ('compute.host.down',
                   *host_events.MONITOR_STATUSES)

#: ``details`` keys that must be present, each a non-empty string.
REQUIRED_DETAILS = ('hostname', 'status', 'monitor', 'monitor_event_id')

#: ``details`` keys copied to traits of the same name when present.
OPTIONAL_DETAILS = ('source', 'cause', 'severity', 'monitor_id', 'planes')


def _required(container: dict, key: str, path: str,
              expected: str) -> typing.Any:
    if key not in container:
        raise exceptions.InvalidPayload(f'{path}.{key}',
                                        f'is required ({expected})')
    return container[key]


class DoctorEventTransformer(base.TransformerBase):
    """Events from the body of a Doctor inspector ``PUT /events`` request.

    Each element gives one event: ``compute.host.down`` or
    ``compute.host.up`` after ``details.status``, with traits ``host``,
    ``status``, ``monitor``, ``monitor_event_id``, ``time`` (when the
    monitor detected it) and any of ``source``, ``cause``, ``severity`` and
    ``monitor_id`` that were sent. The message id is
    :func:`~doctor_plugin.transformers.host_events.detection_id`, so a
    repeated report keeps its id.
    """

    #: On the bus: the reports of monitors with ``report_to = bus``.
    event_types = ('doctor.monitor.report',)

    def transform(self, payload: typing.Any,
                  metadata: typing.Mapping[str, typing.Any] | None = None
                  ) -> list[event_model.Event]:
        if not isinstance(payload, list):
            raise exceptions.InvalidPayload(
                '', f'the body must be a JSON array of Doctor events, got '
                    f'{checks.json_type(payload)}')
        checks.check_document(payload)
        if not payload:
            raise exceptions.InvalidPayload(
                '', 'the body must be a non-empty JSON array of Doctor '
                    'events, got an empty array')
        if len(payload) > checks.MAX_EVENTS:
            raise exceptions.InvalidPayload(
                '', f'the body holds {len(payload)} events; at most '
                    f'{checks.MAX_EVENTS} are accepted in one request, send '
                    f'the rest in further requests')
        generated = event_model.utcnow()
        events = [self._to_event(element, str(index), generated)
                  for index, element in enumerate(payload)]
        for ev in events:
            LOG.debug('Doctor event %(id)s: host %(host)s is %(status)s '
                      '(monitor %(monitor)s)',
                      {'id': ev.message_id, 'host': ev.trait('host'),
                       'status': ev.trait('status'),
                       'monitor': ev.trait('monitor')})
        return events

    @staticmethod
    def _to_event(element: typing.Any, path: str,
                  generated: datetime.datetime) -> event_model.Event:
        if not isinstance(element, dict):
            raise exceptions.InvalidPayload(
                path, f'each event must be an object, got '
                      f'{checks.json_type(element)}')
        if 'id' in element:
            checks.check_text(element['id'], f'{path}.id')

        supported = ', '.join(repr(t) for t in SUPPORTED_TYPES)
        event_type = _required(element, 'type', path,
                               f'one of {supported}')
        if not isinstance(event_type, str):
            raise exceptions.InvalidPayload(
                f'{path}.type', f'must be one of {supported}, got '
                                f'{checks.json_type(event_type)}')
        if event_type not in SUPPORTED_TYPES:
            raise exceptions.InvalidPayload(
                f'{path}.type', f'unsupported event type '
                                f'{checks.shown(event_type)}; supported '
                                f'types: {supported}')

        time_expected = ("an ISO 8601 time such as "
                         "'2017-04-22T12:00:00.123456Z'")
        time_path = f'{path}.time'
        time_text = checks.check_text(
            _required(element, 'time', path, time_expected), time_path)
        try:
            detected = event_model.parse_datetime(time_text)
        except (ValueError, OverflowError):
            raise exceptions.InvalidPayload(
                time_path, f'must be {time_expected}, got '
                           f'{checks.shown(time_text)}') from None

        details = _required(element, 'details', path, 'an object')
        details_path = f'{path}.details'
        if not isinstance(details, dict):
            raise exceptions.InvalidPayload(
                details_path,
                f'must be an object, got {checks.json_type(details)}')
        values = {
            key: checks.check_text(
                _required(details, key, details_path, 'a non-empty string'),
                f'{details_path}.{key}')
            for key in REQUIRED_DETAILS
        }
        status = values['status']
        statuses = host_events.MONITOR_STATUSES.get(
            event_type, tuple(host_events.EVENT_TYPE_BY_STATUS))
        if status not in statuses:
            raise exceptions.InvalidPayload(
                f'{details_path}.status',
                f"must be {' or '.join(repr(s) for s in statuses)} for "
                f"{event_type!r}, got {checks.shown(status)}")

        extra = {key: checks.check_text(details[key], f'{details_path}.{key}')
                 for key in OPTIONAL_DETAILS if key in details}
        return host_events.host_event(
            values['hostname'], status, values['monitor'],
            values['monitor_event_id'], detected, generated, extra, element,
            event_type if event_type in host_events.MONITOR_STATUSES
            else None)
