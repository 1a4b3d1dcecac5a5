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

"""Durable deliveries: record before acknowledging, retry until a deadline.

Every delivery to a webhook or to the bus is first recorded in a database
(:mod:`doctor_plugin.delivery.store`), then made; a delivery that fails is
retried with exponential backoff and jitter until ``[delivery] deadline``,
then dead-lettered (``doctor-plugin deliveries list`` shows it, ``retry``
makes it pending again). Deliveries of one key (an alarm at one URL, a
topic) are made in order. A process that restarts resumes its pending
deliveries (``[delivery] owner``). See :mod:`doctor_plugin.delivery.outbox`.
"""

from __future__ import annotations

import socket
import threading

from oslo_config import cfg

GROUP = 'delivery'

STATE_OPTS = [
    cfg.StrOpt('state_path',
               default='/var/lib/doctor_plugin',
               help='Directory where doctor_plugin keeps its state (the '
                    'default delivery database).'),
]

OPTS = [
    cfg.BoolOpt('durable',
                default=True,
                help='Record every delivery to a webhook or the bus in the '
                     'database before making it, and acknowledge a bus '
                     'message or answer an API request only after its '
                     'deliveries are recorded. Off, a delivery that fails '
                     'is lost once its immediate retries are spent.'),
    cfg.StrOpt('connection',
               default='sqlite:///$state_path/deliveries.sqlite',
               secret=True,
               help='SQLAlchemy URL of the delivery database. The SQLite '
                    'file default survives a restart of the process; '
                    'inspectors that should survive the loss of their '
                    'host share a server, e.g. '
                    'postgresql+psycopg2://doctor:PASSWORD@db/doctor.'),
    cfg.StrOpt('owner',
               default=socket.gethostname(),
               sample_default='<hostname>',
               help='Name of this host\'s deliveries in a shared '
                    'database; each service adds its program name '
                    '(host1:doctor-plugin-inspector). A service resumes '
                    'the pending deliveries of its own name, at start '
                    'and when "doctor-plugin deliveries retry" hands '
                    'them over. Give every host that shares a database '
                    'its own.'),
    cfg.FloatOpt('retry_initial_interval',
                 default=0.5, min=0.01,
                 help='Seconds before the first retry of a failed '
                      'delivery; each retry waits twice as long as the '
                      'last, up to retry_max_interval, less a random part '
                      'of up to half (jitter).'),
    cfg.FloatOpt('retry_max_interval',
                 default=30.0, min=0.01,
                 help='Longest wait between two attempts of a delivery, in '
                      'seconds.'),
    cfg.FloatOpt('deadline',
                 default=3600.0, min=1.0,
                 help='Seconds after its recording that a delivery is '
                      'given up and dead-lettered if it could not be '
                      'made.'),
    cfg.IntOpt('retry_workers',
               default=8, min=1,
               help='Threads that retry failed deliveries and resume '
                    'those a restart left, one key (alarm) at a time '
                    'each: after a restart, how many alarms\' backlogs '
                    'drain at once.'),
    cfg.FloatOpt('poll_interval',
                 default=2.0, min=0.1,
                 help='Seconds between looks at the database for '
                      'deliveries made pending by "doctor-plugin '
                      'deliveries retry".'),
]


_OUTBOXES: dict[tuple[str, str], list] = {}
_LOCK = threading.Lock()


def get_outbox(conf: cfg.ConfigOpts):
    """The process's outbox for ``conf``'s database, or None if not durable.

    Shared by every pipeline and evaluator of the process on the same
    database and owner; give it back with :func:`release`.

    :raises ConfigurationError: if the database cannot be opened
    """
    from doctor_plugin.delivery import outbox as outbox_mod

    if not conf.delivery.durable:
        return None
    key = (conf.delivery.connection, outbox_mod.owner_name(conf))
    with _LOCK:
        entry = _OUTBOXES.get(key)
        if entry is None:
            entry = _OUTBOXES[key] = [outbox_mod.Outbox(conf), 0]
        entry[1] += 1
        return entry[0]


def release(outbox) -> None:
    """Give back an outbox of :func:`get_outbox`; the last one closes it."""
    if outbox is None:
        return
    with _LOCK:
        for key, entry in list(_OUTBOXES.items()):
            if entry[0] is outbox:
                entry[1] -= 1
                if entry[1] > 0:
                    return
                del _OUTBOXES[key]
                break
    outbox.close()
