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
import json
import math
import typing
import uuid

from oslo_log import log as logging

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.transformers import base

LOG = logging.getLogger(__name__)

#: Most events one request body may hold. A monitor reports what it has
#: just detected, so a longer body is a misbehaving client; refusing it
#: keeps one request from holding the inspector up.
MAX_EVENTS = 1000

#: Longest string accepted in any field (Nova's host name column is 255).
MAX_STRING_LENGTH = 255

#: Deepest nesting of arrays and objects accepted in a payload. Doctor's
#: events nest three levels deep and Nova's notifications about eight;
#: Python's own recursion (repr, the bus's signing of the raw payload)
#: gives out at about a thousand.
MAX_DEPTH = 32

#: The ``type`` values Doctor's inspector API defines.
SUPPORTED_TYPES = ('compute.host.down',)

#: ``details.status`` and the event type each value produces.
EVENT_TYPE_BY_STATUS = {
    'down': 'compute.host.down',
    'up': 'compute.host.up',
}

#: ``details`` keys that must be present, each a non-empty string.
REQUIRED_DETAILS = ('hostname', 'status', 'monitor', 'monitor_event_id')

#: ``details`` keys copied to traits of the same name when present.
OPTIONAL_DETAILS = ('source', 'cause', 'severity', 'monitor_id')

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


def json_type(value: typing.Any) -> str:
    """Name the JSON type of a decoded value, for error messages."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'boolean'
    if isinstance(value, (int, float)):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, (list, tuple)):
        return 'array'
    if isinstance(value, dict):
        return 'object'
    return type(value).__name__


def _shown(value: str) -> str:
    """Quote a rejected string, without echoing a huge one back."""
    if len(value) > 64:
        return f'a string of {len(value)} characters'
    return repr(value)


def shown(value: typing.Any) -> str:
    """Show a rejected value of any type in an error message, briefly.

    Strings and short scalars are quoted; anything else is named by its
    JSON type, so that the message never echoes a huge or deeply nested
    value back to the client and into the log.
    """
    if isinstance(value, str):
        return _shown(value)
    if value is None or isinstance(value, (bool, float)) or (
            isinstance(value, int) and abs(value) < 10 ** 18):
        return json.dumps(value)
    kind = json_type(value)
    return f'an {kind}' if kind[0] in 'aeiou' else f'a {kind}'


def _unicode_problem(text: str) -> str | None:
    try:
        text.encode('utf-8')
    except UnicodeEncodeError as exc:
        return (f'holds a lone surrogate ({text[exc.start]!a} at character '
                f'{exc.start}), which is not Unicode text; send UTF-8')
    return None


def check_document(payload: typing.Any) -> None:
    """Check that a decoded payload is JSON every part of us can carry.

    Python's json module reads more than JSON: NaN and infinities, lone
    surrogates (``"\\ud800"``) and any depth of nesting. None of them
    belongs in a report, and each breaks something further on (the
    signature of the bus message, a UUID of the host name, a log line),
    so they are refused here, before anything else looks at the payload.

    :raises InvalidPayload: naming the first part nested more than
        :data:`MAX_DEPTH` levels deep, the first number that is not finite
        or the first string (or key) that is not valid Unicode
    """
    stack: list[tuple[typing.Any, str, int]] = [(payload, '', 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            problem = _unicode_problem(value)
            if problem:
                raise exceptions.InvalidPayload(path, problem)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise exceptions.InvalidPayload(
                    path, f'must be a finite number, got {value}')
        elif isinstance(value, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise exceptions.InvalidPayload(
                    path, f'is nested more than {MAX_DEPTH} levels deep; '
                          f'no payload the inspector takes is')
            items = (value.items() if isinstance(value, dict)
                     else enumerate(value))
            for key, member in items:
                key_text = str(key)
                if len(key_text) > 64:
                    key_text = key_text[:60] + '...'
                name = f'{path}.{key_text}' if path else key_text
                if isinstance(key, str):
                    problem = _unicode_problem(key)
                    if problem:
                        raise exceptions.InvalidPayload(
                            path, f'a key {problem}')
                stack.append((member, name, depth + 1))


def check_text(value: typing.Any, field: str) -> str:
    """Check that ``value`` is a usable string field.

    :raises InvalidPayload: unless it is a string of 1 to
        :data:`MAX_STRING_LENGTH` characters, not only white space.
    """
    expected = (f'must be a non-empty string of at most '
                f'{MAX_STRING_LENGTH} characters')
    if not isinstance(value, str):
        raise exceptions.InvalidPayload(
            field, f'{expected}, got {json_type(value)}')
    if not value.strip():
        raise exceptions.InvalidPayload(field,
                                        f'{expected}, got {_shown(value)}')
    if len(value) > MAX_STRING_LENGTH:
        raise exceptions.InvalidPayload(
            field, f'{expected}, got {_shown(value)}')
    return value


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
    :func:`detection_id`, so a repeated report keeps its id.
    """

    #: On the bus: the reports of monitors with ``report_to = bus``.
    event_types = ('doctor.monitor.report',)

    def transform(self, payload: typing.Any,
                  metadata: typing.Mapping[str, typing.Any] | None = None
                  ) -> list[event_model.Event]:
        if not isinstance(payload, list):
            raise exceptions.InvalidPayload(
                '', f'the body must be a JSON array of Doctor events, got '
                    f'{json_type(payload)}')
        check_document(payload)
        if not payload:
            raise exceptions.InvalidPayload(
                '', 'the body must be a non-empty JSON array of Doctor '
                    'events, got an empty array')
        if len(payload) > MAX_EVENTS:
            raise exceptions.InvalidPayload(
                '', f'the body holds {len(payload)} events; at most '
                    f'{MAX_EVENTS} are accepted in one request, send the '
                    f'rest in further requests')
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
                      f'{json_type(element)}')
        if 'id' in element:
            check_text(element['id'], f'{path}.id')

        supported = ', '.join(repr(t) for t in SUPPORTED_TYPES)
        event_type = _required(element, 'type', path,
                               f'one of {supported}')
        if not isinstance(event_type, str):
            raise exceptions.InvalidPayload(
                f'{path}.type', f'must be one of {supported}, got '
                                f'{json_type(event_type)}')
        if event_type not in SUPPORTED_TYPES:
            raise exceptions.InvalidPayload(
                f'{path}.type', f'unsupported event type '
                                f'{_shown(event_type)}; supported types: '
                                f'{supported}')

        time_expected = ("an ISO 8601 time such as "
                         "'2017-04-22T12:00:00.123456Z'")
        time_path = f'{path}.time'
        time_text = check_text(
            _required(element, 'time', path, time_expected), time_path)
        try:
            detected = event_model.parse_datetime(time_text)
        except (ValueError, OverflowError):
            raise exceptions.InvalidPayload(
                time_path, f'must be {time_expected}, got '
                           f'{_shown(time_text)}') from None

        details = _required(element, 'details', path, 'an object')
        details_path = f'{path}.details'
        if not isinstance(details, dict):
            raise exceptions.InvalidPayload(
                details_path, f'must be an object, got {json_type(details)}')
        values = {
            key: check_text(
                _required(details, key, details_path, 'a non-empty string'),
                f'{details_path}.{key}')
            for key in REQUIRED_DETAILS
        }
        status = values['status']
        if status not in EVENT_TYPE_BY_STATUS:
            raise exceptions.InvalidPayload(
                f'{details_path}.status',
                f"must be 'down' or 'up', got {_shown(status)}")

        extra = {key: check_text(details[key], f'{details_path}.{key}')
                 for key in OPTIONAL_DETAILS if key in details}
        return host_event(values['hostname'], status, values['monitor'],
                          values['monitor_event_id'], detected, generated,
                          extra, element)


def host_event(host: str, status: str, monitor: str, monitor_event_id: str,
               detected: datetime.datetime, generated: datetime.datetime,
               extra: typing.Mapping[str, str], raw: dict
               ) -> event_model.Event:
    """The host event of one detection, whatever reported it.

    ``compute.host.down`` or ``compute.host.up`` after ``status``, with
    traits ``host``, ``status``, ``monitor``, ``monitor_event_id``,
    ``time`` (when it was detected) and the text traits of ``extra``; the
    message id is :func:`detection_id`.
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
        event_type=EVENT_TYPE_BY_STATUS[status],
        generated=generated,
        traits=traits,
        raw=raw)
