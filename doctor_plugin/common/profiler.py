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

"""Doctor's profiler checkpoints, recorded per fault.

Each fault is tracked under its ``monitor_event_id``. Marks are wall-clock
seconds (``time.time()``), so marks taken in different processes on one
machine line up. The names ``T00`` to ``T09`` are those of Doctor's
performance profiler; ``fenced`` is ours: the controller marks it when
the failed host is known to be off (powered off by its fencer, or found
off), before it forces the host down (T04) and sets its VMs to error
(T03). Without fencing (``[fencing] driver = none``) it is not marked.
"""

from __future__ import annotations

import collections
import threading
import time

CHECKPOINTS: dict[str, str] = {
    'T00': 'link down (fault occurs)',
    'T01': 'raw failure (monitor detects)',
    'T02': 'found affected (inspector knows the VMs)',
    'fenced': 'host fenced (known to be off)',
    'T03': 'VMs set to error',
    'T04': 'host marked down',
    'T05': 'VM error notified',
    'T06': 'event transformed',
    'T07': 'event evaluated',
    'T08': 'alarm fired',
    'T09': 'alarm received by the consumer',
}


class Timeline:
    """Thread-safe store of checkpoint times, keyed by fault id.

    The first mark of a checkpoint wins, except T09 (and any name passed in
    ``last_wins``) where the last one does: with one alarm per tenant, a
    fault is notified when its last tenant has its alarm.

    The services mark every fault they handle for as long as they run, so
    only the ``max_faults`` faults marked last are kept; older ones are
    forgotten.
    """

    def __init__(self, last_wins: tuple[str, ...] = ('T09',),
                 max_faults: int = 10000) -> None:
        self._lock = threading.Lock()
        self._marks: collections.OrderedDict[str, dict[str, float]] = (
            collections.OrderedDict())
        self._last_wins = frozenset(last_wins)
        self._max_faults = max_faults

    def mark(self, fault_id: str | None, checkpoint: str,
             when: float | None = None) -> None:
        """Record ``checkpoint`` for ``fault_id`` (now unless ``when``)."""
        if checkpoint not in CHECKPOINTS:
            raise ValueError(f'unknown profiler checkpoint {checkpoint!r}; '
                             f'expected one of {", ".join(CHECKPOINTS)}')
        if not fault_id:
            return
        when = time.time() if when is None else when
        with self._lock:
            marks = self._marks.get(fault_id)
            if marks is None:
                marks = self._marks[fault_id] = {}
                if len(self._marks) > self._max_faults:
                    self._marks.popitem(last=False)
            if checkpoint in self._last_wins or checkpoint not in marks:
                marks[checkpoint] = when

    def marks(self, fault_id: str) -> dict[str, float]:
        """A copy of the marks recorded for ``fault_id``."""
        with self._lock:
            return dict(self._marks.get(fault_id, {}))

    def forget(self, fault_id: str) -> None:
        """Drop the marks of ``fault_id``."""
        with self._lock:
            self._marks.pop(fault_id, None)

    def notification_time(self, fault_id: str) -> float | None:
        """T09 − T01 in seconds, Doctor's pass criterion; None if unknown."""
        marks = self.marks(fault_id)
        if 'T01' in marks and 'T09' in marks:
            return marks['T09'] - marks['T01']
        return None

    def format(self, fault_id: str) -> str:
        """A human table of the marks, in ms from T00 (or the first mark)."""
        marks = self.marks(fault_id)
        if not marks:
            return f'no profiler marks for fault {fault_id}'
        origin = marks.get('T00', min(marks.values()))
        lines = []
        for name, label in CHECKPOINTS.items():
            if name in marks:
                value = f'{(marks[name] - origin) * 1000.0:9.2f} ms'
            else:
                value = '        —   '
            # A longer name (``fenced``) takes the value's leading blanks,
            # so that the columns stay aligned with T00..T09's.
            extra = len(name) - 3
            if extra > 0 and value[:extra].isspace():
                value = value[extra:]
            lines.append(f'  {name}  {value}  {label}')
        total = self.notification_time(fault_id)
        if total is not None:
            lines.append(f'  notification time T09 − T01: '
                         f'{total * 1000.0:.2f} ms')
        return '\n'.join(lines)
