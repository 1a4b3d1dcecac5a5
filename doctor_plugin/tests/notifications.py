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

"""A notification endpoint for tests that listen on the bus."""

import threading
import time


class NotificationRecorder:
    """Keeps every notification it receives, of any priority.

    Each is a dict with ``priority``, ``publisher_id``, ``event_type``,
    ``payload`` and ``metadata``.
    """

    def __init__(self):
        self.received = []
        self._cond = threading.Condition()

    def _record(self, priority, publisher_id, event_type, payload,
                metadata):
        with self._cond:
            self.received.append({
                'priority': priority, 'publisher_id': publisher_id,
                'event_type': event_type, 'payload': payload,
                'metadata': metadata})
            self._cond.notify_all()

    def __getattr__(self, priority):
        if priority not in ('audit', 'debug', 'info', 'warn', 'error',
                            'critical', 'sample'):
            raise AttributeError(priority)

        def endpoint(ctxt, publisher_id, event_type, payload, metadata):
            self._record(priority, publisher_id, event_type, payload,
                         metadata)
        return endpoint

    def of(self, event_type):
        """The payloads of the notifications of ``event_type`` so far."""
        with self._cond:
            return [n['payload'] for n in self.received
                    if n['event_type'] == event_type]

    def wait_until(self, predicate, timeout=5.0):
        """Whether ``predicate()`` came true within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def wait_for(self, count, timeout=5.0):
        """What arrived once there are ``count``, or at ``timeout``."""
        self.wait_until(lambda: len(self.received) >= count, timeout)
        with self._cond:
            return list(self.received)


class BatchRecorder:
    """A notifier plugin stand-in that keeps the batches it is given.

    For tests of what reaches the pipeline's notifiers, where the notifier
    itself is not what is tested.
    """

    def __init__(self):
        self.batches = []
        self.closed = False

    def notify(self, events):
        self.batches.append(list(events))

    def close(self):
        self.closed = True
