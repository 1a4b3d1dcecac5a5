"""``doctor-plugin-heartbeat``: the agent on a compute host.

Sends this host's heartbeat to the detectors of ``[heartbeat] detectors``
every ``[heartbeat] interval`` until SIGTERM or SIGINT; the detector is
``doctor-plugin-monitor`` with ``[monitor] driver = heartbeat``.
"""

from __future__ import annotations

import signal
import sys
import threading

from oslo_log import log as logging

from doctor_plugin import exceptions
from doctor_plugin.monitors import heartbeat
from doctor_plugin import service

LOG = logging.getLogger(__name__)

PROG = 'doctor-plugin-heartbeat'


def main(argv: list[str] | None = None) -> int:
    conf = service.prepare_service(argv, PROG)
    try:
        sender = heartbeat.HeartbeatSender.from_conf(conf)
    except exceptions.ConfigurationError as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    LOG.info('Sending heartbeats of %s every %s s to %s',
             ', '.join(sender.hosts), sender.interval,
             ', '.join(f'{a}:{p}' for a, p in sender.detectors))
    try:
        sender.run(stop)
    finally:
        sender.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
