"""A consumer: the VNF manager's side of an alarm webhook.

A real HTTP server on loopback that accepts Aodh's alarm webhook
(``POST`` with ``alarm_id, alarm_name, severity, previous, current, reason,
reason_data``) and records what it received and when. The demo, the
benchmark and the functional tests use it where a tenant's VNFM would be.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import signal
import socket
import sys
import threading
import time
import typing

from oslo_log import log as logging

from doctor_plugin import childproc

LOG = logging.getLogger(__name__)

ALARM_FIELDS = ('alarm_id', 'alarm_name', 'severity', 'previous', 'current',
                'reason', 'reason_data')


@dataclasses.dataclass(frozen=True, slots=True)
class ReceivedAlarm:
    """One webhook call as the consumer received it."""

    path: str
    body: dict
    headers: dict
    received_at: float

    def trait(self, name: str) -> typing.Any:
        """A trait of the event in ``reason_data``, or None."""
        event = (self.body.get('reason_data') or {}).get('event') or {}
        for trait in event.get('traits') or []:
            if len(trait) == 3 and trait[0] == name:
                return trait[2]
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Headers and body go out in separate writes; with Nagle's algorithm
    # the body would wait for the client's delayed ACK (40 ms on Linux).
    disable_nagle_algorithm = True
    server: ConsumerServer

    def do_POST(self) -> None:
        received_at = time.time()
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            self._reply(400, {'error': 'body is not JSON'})
            return
        missing = [f for f in ALARM_FIELDS
                   if not isinstance(body, dict) or f not in body]
        if missing:
            self._reply(400, {'error': 'not an Aodh alarm body; missing '
                                       + ', '.join(missing)})
            return
        self.server.record(ReceivedAlarm(self.path, body,
                                         dict(self.headers), received_at))
        self._reply(200, {'status': 'received'})

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: typing.Any) -> None:
        LOG.debug('consumer: ' + format, *args)


class AlarmLog:
    """The alarms a consumer received, with a way to wait for them."""

    def __init__(self, on_alarm: typing.Callable[[ReceivedAlarm], None]
                 | None = None) -> None:
        self.alarms: list[ReceivedAlarm] = []
        self._cond = threading.Condition()
        self._on_alarm = on_alarm

    def record(self, alarm: ReceivedAlarm) -> None:
        with self._cond:
            self.alarms.append(alarm)
            self._cond.notify_all()
        if self._on_alarm is not None:
            self._on_alarm(alarm)

    def wait_for(self, count: int, timeout: float) -> list[ReceivedAlarm]:
        """Wait until ``count`` alarms arrived or ``timeout`` seconds.

        :returns: the alarms received so far (check the length).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.alarms) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.alarms)

    def clear(self) -> None:
        with self._cond:
            self.alarms.clear()


class ConsumerServer(AlarmLog, http.server.ThreadingHTTPServer):
    """Receive alarm webhooks on ``host:port`` (port 0 picks a free one).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    :meth:`wait_for` blocks until a number of alarms arrived.
    """

    daemon_threads = True
    # The default backlog of 5 drops the SYNs of an alarm burst.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, host: str = '127.0.0.1', port: int = 0,
                 on_alarm: typing.Callable[[ReceivedAlarm], None]
                 | None = None) -> None:
        AlarmLog.__init__(self, on_alarm)
        http.server.ThreadingHTTPServer.__init__(self, (host, port),
                                                 _Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL of this consumer."""
        host, port = self.server_address[:2]
        return f'http://{host}:{port}'

    def start(self) -> ConsumerServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={'poll_interval': 0.05},
            name='doctor-consumer', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> ConsumerServer:
        return self.start()

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.stop()


class ConsumerProcess(AlarmLog):
    """A :class:`ConsumerServer` in a process of its own.

    A tenant's VNF manager does not share the inspector's interpreter; the
    benchmark runs the consumer this way so that its request parsing does
    not compete with the chain for the GIL. Each alarm comes back over a
    pipe, with the time the consumer received it.
    """

    def __init__(self, on_alarm: typing.Callable[[ReceivedAlarm], None]
                 | None = None) -> None:
        super().__init__(on_alarm)
        self._child = childproc.ChildServer('doctor_plugin.consumer',
                                            what='the consumer process')
        self._reader: threading.Thread | None = None
        self.url = ''

    def start(self) -> ConsumerProcess:
        self.url = self._child.start()['url']
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name='doctor-consumer-reader')
        self._reader.start()
        return self

    def _read(self) -> None:
        for data in self._child.lines():
            self.record(ReceivedAlarm(data['path'], data['body'],
                                      data['headers'], data['received_at']))

    def stop(self) -> None:
        self._child.terminate()
        if self._reader is not None:
            # Every alarm the process printed is recorded before it stops.
            self._reader.join(5)
        self._child.stop()


def main() -> None:
    """Serve on a free loopback port; one JSON line per alarm on stdout."""
    lock = threading.Lock()

    def emit(data: dict) -> None:
        with lock:
            sys.stdout.write(json.dumps(data) + '\n')
            sys.stdout.flush()

    def on_alarm(alarm: ReceivedAlarm) -> None:
        emit(dataclasses.asdict(alarm))

    server = ConsumerServer(on_alarm=on_alarm)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(
        target=server.shutdown, daemon=True).start())
    emit({'url': server.url})
    server.serve_forever(poll_interval=0.05)
    server.server_close()


if __name__ == '__main__':
    main()
