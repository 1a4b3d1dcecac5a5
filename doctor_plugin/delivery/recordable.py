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

"""What the outbox needs of a plugin to record and retry its deliveries.

The delivery layer sits below the plugins: a notifier or an alarm action
that the outbox can make durable implements :class:`Recordable`, whose
payloads are :class:`Prepared` records. Nothing here knows a plugin's
scheme or wire format.
"""

from __future__ import annotations

import typing

from doctor_plugin import exceptions


class Prepared(typing.NamedTuple):
    """One payload of a :class:`Recordable` plugin, before it is recorded."""

    #: Ordering key within the plugin's target (an alarm id, a topic):
    #: payloads of one key are delivered in order.
    key: str
    #: Idempotency key the receiver sees (the event's message_id).
    event_id: str
    #: What logs call it (an alarm's name).
    label: str
    payload: bytes
    #: ``payload`` as ``send`` would decode it, when the plugin has it in
    #: memory: not recorded. The first attempt, in the process that
    #: encoded it, sends it instead of decoding ``payload`` again; it
    #: must not be changed once ``payload`` is made of it.
    decoded: typing.Any = None


@typing.runtime_checkable
class Recordable(typing.Protocol):
    """A plugin whose deliveries the outbox can record and retry.

    Implemented by a :class:`doctor_plugin.notifiers.base.Plugin` (the
    outbox keys lanes by its ``url``).

    ``encode`` must be pure (no I/O): its payloads are recorded before
    any is sent. ``send`` may be called again with the same payload, by
    another instance of the plugin for the same URL, after a restart:
    receivers drop repeats by ``event_id``. An event notifier and an
    alarm action of one scheme must send each other's payloads, since a
    resumed delivery is sent by the event notifier of its URL.
    """

    def encode(self, item: typing.Any) -> list[Prepared]:
        """What ``notify(item)`` would send, as recordable payloads.

        :returns: the payloads, in the order they are to be sent
        """

    def send(self, prepared: typing.Any) -> None:
        """Send one payload of :meth:`encode`, or its recorded copy.

        ``prepared`` has ``payload``, ``event_id`` and ``label``, and
        ``decoded`` (None when only the recorded copy is known, as after
        a restart or a failed attempt).

        :raises doctor_plugin.exceptions.DeliveryError: if the target could
            not be reached or refused it
        """


def send_all(plugin: Recordable, item: typing.Any) -> None:
    """``notify`` of a :class:`Recordable`: encode, then send in order.

    A failure after the first payload says how many went before it.
    """
    prepared = plugin.encode(item)
    for index, payload in enumerate(prepared):
        try:
            plugin.send(payload)
        except exceptions.DeliveryError as exc:
            if index == 0:
                raise
            raise exceptions.DeliveryError(
                f'{exc} ({index} of {len(prepared)} events of this '
                f'batch were delivered before)') from exc
