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
import socket
import threading
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


#: ``type`` of a host's down and up reports (Doctor's own).
HOST_DOWN = 'compute.host.down'
#: ``type`` of a host heard on some of its network planes only.
HOST_DEGRADED = 'compute.host.degraded'
#: ``type`` of a monitor that lost its own network (and got it back).
MONITOR_ISOLATED = 'doctor.monitor.isolated'


@dataclasses.dataclass(frozen=True, slots=True)
class FaultReport:
    """One detected change of a host's state, as a monitor reports it.

    :param hostname: the compute host, as Nova names it; for
        :data:`MONITOR_ISOLATED`, the monitor's own ``monitor_id``
    :param status: ``down`` or ``up`` (:data:`HOST_DOWN`), ``degraded`` or
        ``restored`` (:data:`HOST_DEGRADED`), ``isolated`` or
        ``connected`` (:data:`MONITOR_ISOLATED`)
    :param monitor: the name of the monitor that detected it
    :param detected_at: wall-clock time of detection (T01), seconds
    :param monitor_event_id: unique id of this detection
    :param monitor_id: the vantage point that saw it (``[monitor]
        monitor_id``), so that the inspector can count how many monitors
        agree; left out of the report when empty
    :param planes: the network planes concerned: silent ones for
        ``down`` and ``degraded``, heard again for ``restored``
    :param event_type: the report's ``type``
    """

    hostname: str
    status: str
    monitor: str
    detected_at: float
    monitor_event_id: str = dataclasses.field(
        default_factory=lambda: str(uuid.uuid4()))
    monitor_id: str = ''
    planes: tuple[str, ...] = ()
    event_type: str = HOST_DOWN

    def as_doctor_event(self) -> dict:
        """The element of Doctor's ``PUT /events`` list for this report.

        The one place the wire form is built: every detail is a non-empty
        string, optional ones (``monitor_id``, ``planes``) are left out
        rather than sent empty.
        """
        when = datetime.datetime.fromtimestamp(self.detected_at,
                                               datetime.timezone.utc)
        details = {
            'hostname': self.hostname,
            'status': self.status,
            'monitor': self.monitor,
            'monitor_event_id': self.monitor_event_id,
        }
        if self.monitor_id:
            details['monitor_id'] = self.monitor_id
        if self.planes:
            details['planes'] = ','.join(self.planes)
        return {
            'id': self.monitor_event_id,
            'time': when.replace(tzinfo=None).isoformat(),
            'type': self.event_type,
            'details': details,
        }


def monitor_id(conf: cfg.ConfigOpts) -> str:
    """``[monitor] monitor_id``, or this machine's host name."""
    return conf.monitor.monitor_id or socket.gethostname()


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
