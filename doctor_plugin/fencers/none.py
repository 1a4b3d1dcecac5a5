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

"""The ``none`` fencer: no fencing, the default.

For clouds whose hosts are fenced otherwise (or not at all): the
controller forces a failed host down at once, and records the fence
outcome as ``none``.
"""

from __future__ import annotations

import time

from doctor_plugin.fencers import base


class NoFencer(base.FencerBase):
    """Fence nothing; know no power state."""

    name = 'none'

    def power_state(self, host: str, timeout: float) -> str:
        return 'unknown'

    def fence(self, host: str, timeout: float) -> base.FenceResult:
        now = time.time()
        return base.FenceResult(host, base.NONE, started=now, finished=now)
