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
