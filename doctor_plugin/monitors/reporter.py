"""Send a monitor's fault reports to the inspector, as Doctor's monitors do.

Doctor's inspector takes host faults as ``PUT /events`` with a JSON list of
events (see :meth:`FaultReport.as_doctor_event`). This sits on the
notification path, so one keep-alive HTTP session is reused for every
report, and a failed attempt is retried quickly: a lost fault report is the
worst failure a monitor can have.
"""

from __future__ import annotations

import json
import threading
import time

from oslo_config import cfg
from oslo_log import log as logging
import requests

from doctor_plugin import exceptions
from doctor_plugin.monitors import base

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('inspector_url',
               default='http://127.0.0.1:12345/events',
               help='URL of the inspector\'s Doctor events API; fault '
                    'reports are sent to it as PUT with a JSON list of '
                    'Doctor events.'),
    cfg.FloatOpt('report_timeout',
                 default=2.0,
                 min=0.01,
                 help='Seconds to wait for the inspector to connect and '
                      'answer one fault report attempt.'),
    cfg.IntOpt('report_retries',
               default=3,
               min=0,
               help='How many times a fault report is sent again after a '
                    'connection error, a timeout or a 5xx answer, with a '
                    'short backoff (50 ms, doubling). A 4xx answer is not '
                    'retried.'),
]

#: Seconds to wait before the first retry; doubled for each further one.
RETRY_BACKOFF = 0.05
#: Upper bound of the wait between two attempts, in seconds.
MAX_BACKOFF = 1.0
#: How much of a non-JSON error body to quote in logs and errors.
MAX_ERROR_BODY = 500

_HEADERS = {
    'Content-Type': 'application/json',
    'Accept': 'application/json',
}


class InspectorReporter:
    """Report faults to the inspector's ``PUT /events`` API.

    An instance is the ``reporter`` a monitor calls once per detected state
    change. Calls are serialised; a monitor calls it from one worker thread
    so that a slow inspector never delays probing.

    :param conf: configuration with the ``[monitor]`` options of this module
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        conf.register_opts(OPTS, group='monitor')
        self.url: str = conf.monitor.inspector_url
        self.timeout: float = conf.monitor.report_timeout
        self.retries: int = conf.monitor.report_retries
        self._session = requests.Session()
        self._session.headers.update(_HEADERS)
        self._lock = threading.Lock()

    def __call__(self, report: base.FaultReport) -> None:
        """Send ``report`` to the inspector.

        :raises doctor_plugin.exceptions.DeliveryError: if the inspector
            rejected the report (4xx) or could not take it after
            ``report_retries`` retries.
        """
        data = json.dumps([report.as_doctor_event()])
        with self._lock:
            self._send(report, data)

    def _send(self, report: base.FaultReport, data: str) -> None:
        attempts = self.retries + 1
        last_failure = ''
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(RETRY_BACKOFF * 2 ** (attempt - 1),
                               MAX_BACKOFF))
            started = time.monotonic()
            try:
                response = self._session.put(self.url, data=data,
                                             timeout=self.timeout)
            except requests.RequestException as exc:
                last_failure = f'{type(exc).__name__}: {exc}'
                LOG.warning('Attempt %(attempt)d/%(attempts)d to report '
                            'host %(host)s %(status)s to %(url)s failed: '
                            '%(error)s',
                            {'attempt': attempt + 1, 'attempts': attempts,
                             'host': report.hostname,
                             'status': report.status, 'url': self.url,
                             'error': last_failure})
                continue
            if response.status_code < 300:
                LOG.info('Reported host %(host)s %(status)s (event '
                         '%(id)s) to %(url)s in %(ms).1f ms',
                         {'host': report.hostname, 'status': report.status,
                          'id': report.monitor_event_id, 'url': self.url,
                          'ms': (time.monotonic() - started) * 1000.0})
                return
            error = _error_body(response)
            if response.status_code < 500:
                LOG.error('The inspector at %(url)s rejected the report of '
                          'host %(host)s %(status)s: HTTP %(code)d %(error)s',
                          {'url': self.url, 'host': report.hostname,
                           'status': report.status,
                           'code': response.status_code, 'error': error})
                raise exceptions.DeliveryError(
                    f'the inspector at {self.url} rejected the report of '
                    f'host {report.hostname} {report.status} with HTTP '
                    f'{response.status_code}: {error}')
            last_failure = f'HTTP {response.status_code}: {error}'
            LOG.warning('Attempt %(attempt)d/%(attempts)d to report host '
                        '%(host)s %(status)s to %(url)s failed: %(error)s',
                        {'attempt': attempt + 1, 'attempts': attempts,
                         'host': report.hostname, 'status': report.status,
                         'url': self.url, 'error': last_failure})
        raise exceptions.DeliveryError(
            f'could not report host {report.hostname} {report.status} to '
            f'the inspector at {self.url} after {attempts} attempt(s); '
            f'last error: {last_failure}. Check that '
            f'doctor-plugin-inspector is running and reachable, and that '
            f'[monitor] inspector_url points at its events API.')

    def close(self) -> None:
        """Close the kept-alive connections to the inspector."""
        self._session.close()


def _error_body(response: requests.Response) -> str:
    """The inspector's error, compact JSON if it sent JSON, else its text."""
    try:
        return json.dumps(response.json(), sort_keys=True)
    except ValueError:
        text = response.text.strip()
        if len(text) > MAX_ERROR_BODY:
            text = text[:MAX_ERROR_BODY] + '...'
        return text or '(empty body)'
