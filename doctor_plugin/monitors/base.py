"""The monitor contract: watch hosts, report faults to the inspector."""

from __future__ import annotations

import abc
import dataclasses
import datetime
import threading
import typing
import uuid

from oslo_config import cfg


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
