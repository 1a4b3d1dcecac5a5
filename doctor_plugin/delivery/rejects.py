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

"""Bus messages that cannot be used: counted, logged and kept once."""

from __future__ import annotations

import json
import threading
import typing

from oslo_log import log as logging

from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)


class Rejects:
    """Count, log and keep the notifications that cannot be used.

    A malformed notification (a payload its transformer refuses, or one
    that breaks it) is acknowledged, logged once with its reason, and
    kept in the delivery database (``doctor-plugin deliveries rejected``)
    when there is one. Messages the bus driver cannot decode never reach
    us: oslo.messaging rejects them, and a RabbitMQ dead-letter policy on
    the queue keeps them (see the admin guide).

    :param outbox: where to keep them; None only counts and logs
    """

    def __init__(self, outbox: typing.Any = None,
                 source: str = 'bus') -> None:
        self.outbox = outbox
        self.source = source
        self.count = 0
        self._lock = threading.Lock()

    def reject(self, meta: dict, payload: typing.Any,
               exc: Exception) -> None:
        with self._lock:
            self.count += 1
            count = self.count
        event_type = meta.get('event_type')
        message_id = meta.get('message_id')
        if isinstance(exc, exceptions.InvalidPayload):
            reason = str(exc)
            LOG.warning('Rejected malformed %s notification %s from %s (%d '
                        'rejected so far): %s', event_type, message_id,
                        meta.get('publisher_id'), count, reason)
        else:
            reason = f'{type(exc).__name__}: {exc}'
            LOG.exception('Rejected %s notification %s from %s that could '
                          'not be handled (%d rejected so far)', event_type,
                          message_id, meta.get('publisher_id'), count)
        if self.outbox is None:
            return
        try:
            body = json.dumps(payload, default=repr)
        except (TypeError, ValueError):
            body = repr(payload)
        except RecursionError:
            # Decoded near the interpreter's limit, it cannot be written
            # back; raising here would requeue it for ever.
            body = (f'<{type(payload).__name__} nested too deeply to '
                    f'keep>')
        try:
            self.outbox.reject(self.source, message_id, event_type, reason,
                               body)
        except exceptions.DeliveryError as db_exc:
            LOG.error('Could not keep the rejected notification %s: %s',
                      message_id, db_exc)
