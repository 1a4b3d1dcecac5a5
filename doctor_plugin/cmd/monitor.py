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

"""``doctor-plugin-monitor``: run one monitor plugin until told to stop.

The monitor named by ``[monitor] driver`` watches hosts and reports each
state change to the inspector at ``[monitor] inspector_url`` (one of them,
for a cluster). SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import signal
import sys
import threading
import types

from oslo_log import log as logging

from doctor_plugin.common import plugins
from doctor_plugin import exceptions
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin import service

LOG = logging.getLogger(__name__)

#: Exit status for a configuration the monitor cannot start with.
EXIT_CONFIG_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    """Parse the configuration, load the monitor and run it.

    :param argv: command line arguments, without the program name;
        ``sys.argv[1:]`` when None
    :returns: the exit status: 0 after a clean stop, 2 if the configured
        monitor cannot be loaded or its configuration is invalid
    """
    conf = service.prepare_service(argv, 'doctor-plugin-monitor')

    try:
        # A bad [monitor] inspector_url is refused here.
        reporter = reporter_mod.make_reporter(conf)
    except exceptions.ConfigurationError as exc:
        print(f'doctor-plugin-monitor: {exc}', file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        monitor = plugins.load_driver(plugins.MONITORS_NAMESPACE,
                                      conf.monitor.driver, conf, reporter)
    except (exceptions.PluginLoadError,
            exceptions.ConfigurationError) as exc:
        reporter.close()
        print(f'doctor-plugin-monitor: {exc}', file=sys.stderr)
        return EXIT_CONFIG_ERROR

    stop = threading.Event()
    received: list[int] = []

    def request_stop(signum: int, frame: types.FrameType | None) -> None:
        # Logging from a signal handler can deadlock; log after run().
        received.append(signum)
        stop.set()

    previous = {signum: signal.signal(signum, request_stop)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    LOG.info('Monitor %(driver)s started; reporting to %(url)s',
             {'driver': conf.monitor.driver,
              'url': (', '.join(reporter.urls)
                      if isinstance(reporter, reporter_mod.InspectorReporter)
                      else reporter.url)})
    try:
        monitor.run(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reporter.close()
    LOG.info('Monitor %(driver)s stopped on %(signal)s',
             {'driver': conf.monitor.driver,
              'signal': ', '.join(signal.Signals(n).name for n in received)
              or 'request'})
    return 0


if __name__ == '__main__':
    sys.exit(main())
