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

"""The notification work in progress in this process, for others to
yield to."""

from __future__ import annotations

import threading
import typing


class Activity:
    """Counts the notification work in progress, for others to yield to.

    The inspector's own background work (the Nova fix-up) waits for a lull
    before each of its calls, so that a fault arriving while an earlier
    one is being fixed up is published, and its tenants' webhooks called,
    without sharing the interpreter with hundreds of instance resets.
    """

    def __init__(self) -> None:
        self._busy = 0
        self._cond = threading.Condition()

    def begin(self) -> None:
        """One more piece of work (which :meth:`end` ends) runs."""
        with self._cond:
            self._busy += 1

    def end(self) -> None:
        with self._cond:
            self._busy -= 1
            if not self._busy:
                self._cond.notify_all()

    def __enter__(self) -> Activity:
        self.begin()
        return self

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.end()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no notification work runs; False after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)
