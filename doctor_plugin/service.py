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

"""What every doctor_plugin process does first: threads, configuration, logs.

Importing this module imports neither oslo.messaging nor our services
(:func:`use_threads` must run before they are imported); the functions
import what they use.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import typing
import warnings

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)


def use_threads() -> None:
    """Choose oslo.service's threading backend for this process.

    Our services run oslo.messaging listeners with the threading executor,
    but oslo.service settles on eventlet, its default, as soon as
    oslo.messaging is imported. So our commands call this before they
    import anything else of ours (``doctor_plugin/cmd/__init__.py`` does,
    for every console script). Never on import of ``doctor_plugin``: when
    Aodh or Ceilometer load our plugins, the backend is their process's
    choice.

    It also silences the deprecation banner eventlet prints when futurist
    or oslo.service import it (eventlet is installed beside oslo.service,
    but we do not use it), which would open every command's output.
    """
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated',
                            module=r'(futurist|oslo_service)\.')
    from oslo_service import backend

    if backend.get_backend_type() is None:
        try:
            backend.init_backend(backend.BackendType.THREADING)
        except (ImportError, ValueError):
            # oslo.service installed without its "threading" extra: the
            # eventlet backend works too, as our code never relies on it.
            pass


def prepare_service(argv: list[str] | None, prog: str,
                    conf: cfg.ConfigOpts | None = None,
                    default_config_files: list[str] | None = None
                    ) -> cfg.ConfigOpts:
    """Register every option, parse the command line and files, set up logs.

    ``--config-file`` and ``--config-dir`` work as in every OpenStack
    service; with neither, /etc/doctor_plugin/doctor_plugin.conf is read if
    it exists.
    """
    from doctor_plugin import opts

    conf = conf or cfg.ConfigOpts()
    logging.register_options(conf)
    logging.set_defaults(default_log_levels=logging.get_default_log_levels()
                         + ['stevedore=WARN', 'oslo_messaging=WARN'])
    opts.register_all(conf)
    conf(argv if argv is not None else sys.argv[1:], project='doctor_plugin',
         prog=prog, default_config_files=default_config_files,
         validate_default_values=True)
    logging.setup(conf, 'doctor_plugin')
    return conf


def freeze_startup_heap() -> None:
    """Keep what start-up allocated out of the garbage collector's scans.

    A started service holds hundreds of thousands of long-lived objects
    (modules, oslo.config, the topology); every full collection of the
    cyclic GC walked them all, a 40-60 ms pause of every thread (measured
    in the benchmark with gc.callbacks), which is what a fault arriving at
    that moment waited. Frozen, they are never collected (they live as
    long as the process anyway) and full collections only walk what was
    allocated since.
    """
    gc.collect()
    gc.freeze()


def run_until_signalled(start: typing.Callable[[], object],
                        stop: typing.Callable[[], object],
                        reload: typing.Callable[[], object] | None = None
                        ) -> None:
    """Start a service, wait for SIGTERM or SIGINT, stop it.

    With ``reload``, SIGHUP calls it (from this thread, not the handler),
    as it makes OpenStack services read their definition files again.
    """
    from doctor_plugin.common import messaging

    done = threading.Event()
    wake = threading.Event()
    hups: list[int] = []

    def handler(signum, frame):
        LOG.info('Received signal %d, stopping', signum)
        done.set()
        wake.set()

    def hup(signum, frame):
        hups.append(signum)
        wake.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    if reload is not None:
        signal.signal(signal.SIGHUP, hup)
    start()
    freeze_startup_heap()
    try:
        while not done.is_set():
            wake.wait(1.0)
            wake.clear()
            while hups and not done.is_set():
                hups.pop()
                LOG.info('Received SIGHUP, reloading')
                assert reload is not None  # hup() is installed only then
                try:
                    reload()
                except Exception:
                    LOG.exception('Reload failed; running as before')
    finally:
        stop()
        messaging.cleanup()


def fail(exc: exceptions.DoctorPluginError, prog: str) -> int:
    """Report a startup error the user can fix; the exit status to use."""
    print(f'{prog}: error: {exc}', file=sys.stderr)
    return 2
