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

"""The event model: the one record every part of doctor_plugin passes on.

It is Ceilometer's event model (``ceilometer.event.models``), so that what we
put on the bus is understood by Ceilometer and Aodh without translation, and
what they emit we can ingest. Traits carry Ceilometer's integer type codes and
travel as ``[name, dtype, value]`` triples.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import typing
import uuid

from oslo_config import cfg
from oslo_utils import timeutils

from doctor_plugin import exceptions

#: The width of Ceilometer's trait text and event type columns.
MAX_STRING_LENGTH = 255

#: The group of :data:`LIMIT_OPTS`: the inspector's, which takes events in
#: (the API, the bus listener).
LIMIT_GROUP = 'inspector'

#: Limits on what one event may carry, checked by :func:`check_limits`.
LIMIT_OPTS = [
    cfg.IntOpt('max_traits',
               default=64, min=1,
               help='Most traits an event taken in may carry; an event '
                    'with more is refused (HTTP 400 on the API).'),
    cfg.IntOpt('max_string_length',
               default=MAX_STRING_LENGTH, min=16,
               help="Longest event type, trait name and text trait value "
                    "of an event taken in, in characters; longer ones are "
                    "refused (HTTP 400 on the API). 255 is the width of "
                    "Ceilometer's trait text column."),
]


class TraitType(enum.IntEnum):
    """Ceilometer's trait data types, with their wire codes."""

    NONE = 0
    TEXT = 1
    INT = 2
    FLOAT = 3
    DATETIME = 4


#: Names Aodh's query ``type`` field and Ceilometer's trait definitions use.
TRAIT_TYPE_NAMES: dict[TraitType, str] = {
    TraitType.NONE: 'none',
    TraitType.TEXT: 'string',
    TraitType.INT: 'integer',
    TraitType.FLOAT: 'float',
    TraitType.DATETIME: 'datetime',
}


#: The ISO 8601 forms of times already formatted, by ``id()``, with the
#: time itself (held, so that its id is not reused while it is here).
Times = dict[int, tuple[datetime.datetime, str]]


def isoformat(value: datetime.datetime, times: Times | None = None) -> str:
    """``value.isoformat()``, once per time object given ``times``."""
    if times is None:
        return value.isoformat()
    known = times.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    text = value.isoformat()
    times[id(value)] = (value, text)
    return text


def parse_datetime(value: str | datetime.datetime) -> datetime.datetime:
    """Parse an ISO 8601 time as a naive UTC datetime, Ceilometer's way."""
    if isinstance(value, datetime.datetime):
        parsed = value
    elif not isinstance(value, str):
        raise TypeError(f'expected an ISO 8601 string or a datetime, got '
                        f'{type(value).__name__}')
    else:
        text = value.strip()
        try:
            # 17 µs through iso8601, 1 µs here; every event on the bus
            # carries at least one time.
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            # Python 3.10's fromisoformat rejects "Z" and fractions of
            # other than 3 or 6 digits, which monitors do send.
            parsed = timeutils.parse_isotime(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return parsed


def utcnow() -> datetime.datetime:
    """The current time as a naive UTC datetime (Ceilometer's convention)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


@dataclasses.dataclass(frozen=True, slots=True)
class Trait:
    """A typed name/value pair attached to an event."""

    name: str
    dtype: TraitType
    value: typing.Any

    @classmethod
    def of(cls, name: str, dtype: TraitType | int,
           value: typing.Any) -> Trait:
        """Build a trait, converting ``value`` to ``dtype``.

        :raises ValueError: if the value cannot be converted.
        """
        dtype = TraitType(dtype)
        return cls(name, dtype, convert_trait_value(dtype, value))

    def serialize(self, times: Times | None = None) -> list:
        """Return the ``[name, dtype, value]`` triple Ceilometer sends.

        :param times: see :meth:`Event.serialize`
        """
        value = self.value
        if isinstance(value, datetime.datetime):
            value = isoformat(value, times)
        return [self.name, int(self.dtype), value]

    @classmethod
    def deserialize(cls, data: typing.Sequence) -> Trait:
        """Rebuild a trait from a ``[name, dtype, value]`` triple."""
        if not isinstance(data, (list, tuple)) or len(data) != 3:
            raise ValueError(
                f'a trait must be a [name, dtype, value] triple, got {data!r}')
        name, dtype, value = data
        if not isinstance(name, str) or not name:
            raise ValueError(f'trait name must be a non-empty string, '
                             f'got {name!r}')
        try:
            return cls.of(name, int(dtype), value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'trait {name!r}: {exc}') from None


def convert_trait_value(dtype: TraitType, value: typing.Any) -> typing.Any:
    """Convert ``value`` to the Python type that ``dtype`` stands for."""
    if value is None:
        return None
    if dtype == TraitType.INT:
        if isinstance(value, bool) or (isinstance(value, float)
                                       and not value.is_integer()):
            raise ValueError(f'{value!r} is not an integer')
        return int(value)
    if dtype == TraitType.FLOAT:
        number = float(value)
        if not math.isfinite(number):
            # "nan" and "inf" are floats to Python, not to JSON, Aodh's
            # queries or a consumer.
            raise ValueError(f'{value!r} is not a finite number')
        return number
    if dtype == TraitType.DATETIME:
        return parse_datetime(value)
    if dtype == TraitType.TEXT:
        return str(value)
    return value


def trait_type_of(value: typing.Any) -> TraitType:
    """Pick the trait type that fits a Python value."""
    if value is None:
        return TraitType.NONE
    if isinstance(value, bool):
        return TraitType.TEXT
    if isinstance(value, int):
        return TraitType.INT
    if isinstance(value, float):
        return TraitType.FLOAT
    if isinstance(value, datetime.datetime):
        return TraitType.DATETIME
    return TraitType.TEXT


@dataclasses.dataclass(slots=True)
class Event:
    """A Ceilometer-compatible event.

    :param message_id: unique id of the event; also the idempotency key
    :param event_type: dotted type, e.g. ``compute.host.down``
    :param generated: when the event was generated (naive UTC)
    :param traits: typed name/value pairs
    :param raw: the payload the event was built from (may be empty)
    """

    message_id: str
    event_type: str
    generated: datetime.datetime
    traits: list[Trait]
    raw: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def create(cls, event_type: str,
               traits: typing.Iterable[Trait] | dict[str, typing.Any],
               raw: dict | None = None,
               generated: datetime.datetime | None = None,
               message_id: str | None = None) -> Event:
        """Make a new event; a dict of traits is typed value by value."""
        if isinstance(traits, dict):
            traits = [Trait.of(k, trait_type_of(v), v)
                      for k, v in traits.items()]
        return cls(message_id=message_id or str(uuid.uuid4()),
                   event_type=event_type,
                   generated=generated or utcnow(),
                   traits=list(traits),
                   raw=raw if raw is not None else {})

    def trait(self, name: str, default: typing.Any = None) -> typing.Any:
        """Return the value of trait ``name``, or ``default``."""
        for trait in self.traits:
            if trait.name == name:
                return trait.value
        return default

    def trait_dict(self) -> dict[str, typing.Any]:
        """Return the traits as a plain ``{name: value}`` dict."""
        return {t.name: t.value for t in self.traits}

    def serialize(self, times: Times | None = None) -> dict:
        """Return the dict Ceilometer puts on the bus for this event.

        :param times: shared by the events of one batch (a fresh dict per
            batch), so that each time object is formatted once: the
            events fanned out of a host event share its times, and
            formatting a time costs more than the rest of a trait
        """
        return {
            'message_id': self.message_id,
            'event_type': self.event_type,
            'generated': isoformat(self.generated, times),
            'traits': [t.serialize(times) for t in self.traits],
            'raw': self.raw,
        }

    @classmethod
    def deserialize(cls, data: dict) -> Event:
        """Rebuild an event from its bus form.

        :raises ValueError: naming the field that is missing or malformed.
        """
        if not isinstance(data, dict):
            raise ValueError(f'an event must be an object, got '
                             f'{type(data).__name__}')
        for field in ('message_id', 'event_type', 'generated'):
            if not isinstance(data.get(field), str) or not data[field]:
                raise ValueError(f'event field {field!r} must be a '
                                 f'non-empty string')
        traits = data.get('traits', [])
        if not isinstance(traits, list):
            raise ValueError("event field 'traits' must be a list")
        raw = data.get('raw') or {}
        if not isinstance(raw, dict):
            raise ValueError("event field 'raw' must be an object")
        try:
            generated = parse_datetime(data['generated'])
        except ValueError:
            raise ValueError(f"event field 'generated' is not an ISO 8601 "
                             f"time: {data['generated']!r}") from None
        return cls(message_id=data['message_id'],
                   event_type=data['event_type'],
                   generated=generated,
                   traits=[Trait.deserialize(t) for t in traits],
                   raw=raw)


def check_limits(events: typing.Iterable[Event], max_traits: int,
                 max_string_length: int) -> None:
    """Refuse events over the ``[inspector]`` limits of :data:`LIMIT_OPTS`.

    The one check of what an event may carry, for every way events come
    in: call it with ``conf.inspector.max_traits`` and
    ``conf.inspector.max_string_length`` before the events go further.

    :raises doctor_plugin.exceptions.LimitExceeded: for the first event
        with too many traits, or a too long event type, trait name or text
        trait value; its ``field`` is ``events.<index>...``
    """
    for index, event in enumerate(events):
        where = f'events.{index}'
        if len(event.event_type) > max_string_length:
            raise exceptions.LimitExceeded(
                f'{where}.event_type',
                f'event type of {len(event.event_type)} characters exceeds '
                f'the limit of {max_string_length} ([inspector] '
                f'max_string_length)')
        if len(event.traits) > max_traits:
            raise exceptions.LimitExceeded(
                f'{where}.traits',
                f'{event.event_type} event with {len(event.traits)} traits '
                f'exceeds the limit of {max_traits} ([inspector] '
                f'max_traits)')
        for trait in event.traits:
            if len(trait.name) > max_string_length:
                raise exceptions.LimitExceeded(
                    f'{where}.traits',
                    f'trait name of {len(trait.name)} characters exceeds '
                    f'the limit of {max_string_length} ([inspector] '
                    f'max_string_length)')
            if (isinstance(trait.value, str)
                    and len(trait.value) > max_string_length):
                raise exceptions.LimitExceeded(
                    f'{where}.traits.{trait.name}',
                    f'value of trait {trait.name!r} of {event.event_type} '
                    f'has {len(trait.value)} characters, over the limit of '
                    f'{max_string_length} ([inspector] max_string_length)')
