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

"""Take events already in Ceilometer's format: ``PUT /events/ceilometer``.

Ceilometer's event pipeline, through our ``doctor://`` publisher
(:mod:`doctor_plugin.integrations.ceilometer`), sends the inspector a JSON
list of serialised events, the payload Ceilometer's ``notifier://``
publisher puts on the bus::

    [{"message_id": "...", "event_type": "compute.instance.update",
      "generated": "2026-11-25T10:00:00.123456",
      "traits": [["instance_id", 1, "vm-1"], ["state", 1, "error"]],
      "raw": {}, "message_signature": "..."}]

The list is validated as a whole: one malformed event rejects the request
with a 400 naming it.
"""

from __future__ import annotations

import typing

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.transformers import base
from doctor_plugin.transformers import payload as checks

#: Longest error message given back: the event model's quote the values.
MAX_MESSAGE = 300


def _brief(message: str) -> str:
    if len(message) <= MAX_MESSAGE:
        return message
    return message[:MAX_MESSAGE - 3] + '...'


class CeilometerEventTransformer(base.TransformerBase):
    """A list of serialised Ceilometer events → Events, unchanged."""

    def transform(self, payload: typing.Any,
                  metadata: typing.Mapping[str, typing.Any] | None = None
                  ) -> list[event_model.Event]:
        payload = checks.event_list(
            payload, 'expected a non-empty JSON list of Ceilometer events '
                     '(message_id, event_type, generated, traits, raw)')
        checks.check_document(payload)
        events = []
        for index, item in enumerate(payload):
            if not isinstance(item, dict):
                raise exceptions.InvalidPayload(
                    str(index), 'each event must be a JSON object')
            try:
                events.append(event_model.Event.deserialize(item))
            except (TypeError, ValueError, KeyError, OverflowError) as exc:
                # OverflowError: a time that leaves the calendar when
                # moved to UTC (0001-01-01T00:00:00+01:00).
                raise exceptions.InvalidPayload(
                    str(index), _brief(str(exc))) from None
        return events
