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

"""Wait for something that nothing signals: poll it."""

from __future__ import annotations

import time
import typing


def wait_until(predicate: typing.Callable[[], typing.Any],
               timeout: float = 1.0, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it is true; whether it became true.

    For what is only seen by asking (a server's recorded calls, a
    database); where a condition variable is notified, wait on it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
