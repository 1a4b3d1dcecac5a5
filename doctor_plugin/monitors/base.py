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

"""The monitor contract: watch hosts, report faults to the inspector."""

from __future__ import annotations

import abc
import dataclasses
import datetime
import queue
import threading
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class FaultReport:
    """One detected change of a host's state, as a monitor reports it.

    :param hostname: the compute host, as Nova names it
    :param status: ``down`` or ``up``
    :param monitor: the name of the monitor that detected it
    :param detected_at: wall-clock time of detection (T01), seconds
    :param monitor_event_id: unique id of this detection
    """

    hostname: str
    status: str
    monitor: str
    detected_at: float
    monitor_event_id: str = dataclasses.field(
        default_factory=lambda: str(uuid.uuid4()))

    def as_doctor_event(self) -> dict:
        """The element of Doctor's ``PUT /events`` list for this report."""
        when = datetime.datetime.fromtimestamp(self.detected_at,
                                               datetime.timezone.utc)
        return {
            'id': self.monitor_event_id,
            'time': when.replace(tzinfo=None).isoformat(),
            'type': 'compute.host.down',
            'details': {
                'hostname': self.hostname,
                'status': self.status,
                'monitor': self.monitor,
                'monitor_event_id': self.monitor_event_id,
            },
        }


Reporter = typing.Callable[[FaultReport], None]


class ReportQueue:
    """Hand a monitor's reports to its reporter, in order.

    From a thread of their own, so that a slow or unreachable inspector
    never delays detection.

    :param reporter: the monitor's reporter
    :param name: the thread's name
    """

    def __init__(self, reporter: Reporter, name: str) -> None:
        self._reporter = reporter
        self._queue: queue.Queue[FaultReport | None] = queue.Queue()
        self._thread = threading.Thread(target=self._deliver, name=name,
                                        daemon=True)
        self._thread.start()

    def put(self, report: FaultReport) -> None:
        self._queue.put(report)

    def close(self, timeout: float) -> None:
        """Deliver what is queued, for ``timeout`` seconds at most."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            LOG.warning('Stopped with %d fault report(s) still being '
                        'delivered to the inspector', self._queue.qsize())

    def _deliver(self) -> None:
        while True:
            report = self._queue.get()
            if report is None:
                return
            try:
                self._reporter(report)
            except Exception:
                LOG.exception('Lost the report of host %(host)s %(status)s '
                              '(event %(id)s)',
                              {'host': report.hostname,
                               'status': report.status,
                               'id': report.monitor_event_id})


class MonitorBase(metaclass=abc.ABCMeta):
    """Detect host faults and hand each one to ``reporter``.

    A monitor is loaded by name from the ``doctor_plugin.monitors``
    namespace and runs in the thread that calls :meth:`run` until
    ``stop`` is set.

    :param conf: the service's configuration
    :param reporter: called once per detected state change; usually an
        :class:`doctor_plugin.monitors.reporter.InspectorReporter`
    """

    name: typing.ClassVar[str] = 'monitor'

    def __init__(self, conf: cfg.ConfigOpts, reporter: Reporter) -> None:
        self.conf = conf
        self.reporter = reporter

    @abc.abstractmethod
    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set, reporting every state change."""
