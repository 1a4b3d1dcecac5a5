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

"""A consumer: the VNF manager's side of an alarm webhook.

A real HTTP server on loopback that accepts Aodh's alarm webhook
(``POST`` with ``alarm_id, alarm_name, severity, previous, current, reason,
reason_data``) and records what it received and when. The demo, the
benchmark and the functional tests use it where a tenant's VNFM would be,
and a notifier plugin's tests can point its webhooks at it:
:class:`ConsumerServer` serves in a thread of the test's process,
:class:`ConsumerProcess` in a process of its own, and both wait for the
alarms with :meth:`AlarmLog.wait_for`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import json
import signal
import socket
import ssl
import sys
import threading
import time
import typing

from doctor_plugin import signing
from doctor_plugin.testing import childproc

#: A webhook body larger than this is refused (413).
MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024

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


class AlarmLog:
    """The alarms a consumer received, with a way to wait for them."""

    def __init__(self, on_alarm: typing.Callable[[ReceivedAlarm], None]
                 | None = None, keep: bool = True) -> None:
        self.alarms: list[ReceivedAlarm] = []
        self._cond = threading.Condition()
        self._on_alarm = on_alarm
        self._keep = keep

    def record(self, alarm: ReceivedAlarm) -> None:
        if self._keep:
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


class ConsumerServer(AlarmLog):
    """Receive alarm webhooks on ``host:port`` (port 0 picks a free one).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    :meth:`wait_for` blocks until a number of alarms arrived.

    One asyncio loop in one thread serves every connection, HTTP/1.1 with
    keep-alive: a VNF manager stand-in that takes a burst of hundreds of
    tenants' alarms at once must not spend the burst starting threads and
    handing the GIL between them (a thread per connection cost 0.5 ms of
    CPU per alarm, and set when the last tenant heard of a fault).

    :param ssl_context: serve HTTPS with this server-side context
    :param keep: keep the alarms in :attr:`alarms` (for :meth:`wait_for`);
        a server that only hands them to ``on_alarm`` keeps none
    :param signing_key: accept only webhooks signed with this key
        (:mod:`doctor_plugin.signing`), refusing others with 401
    :param delay: seconds to wait before answering each webhook
    """

    def __init__(self, host: str = '127.0.0.1', port: int = 0,
                 on_alarm: typing.Callable[[ReceivedAlarm], None]
                 | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 keep: bool = True,
                 signing_key: bytes | None = None,
                 delay: float = 0.0) -> None:
        super().__init__(on_alarm, keep)
        self._delay = delay
        self._verifier = (signing.Verifier(signing_key) if signing_key
                          else None)
        #: Why each refused (unsigned, forged, replayed) webhook was.
        self.refused: list[str] = []
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        # Bound now, so that the URL is known before the loop runs; the
        # default backlog of a burst's SYNs would overflow a small queue.
        self.socket = socket.create_server((host, port), family=family,
                                           backlog=socket.SOMAXCONN)
        self.server_port: int = self.socket.getsockname()[1]
        self._ssl = ssl_context
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._stop_requested = False
        self._start_error: Exception | None = None
        self._wakeup: asyncio.Event | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """The base URL of this consumer."""
        host = self.socket.getsockname()[0]
        if ':' in host:
            host = f'[{host}]'
        return f'http://{host}:{self.server_port}'

    def start(self) -> ConsumerServer:
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,),
                                        name='doctor-consumer', daemon=True)
        self._thread.start()
        started.wait(10)
        if self._start_error is not None or not started.is_set():
            raise RuntimeError(
                f'the consumer on port {self.server_port} did not start '
                f'serving: {self._start_error or "not within 10 s"}')
        return self

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main(started))
        except Exception as exc:
            if started.is_set():
                raise
            self._start_error = exc
            started.set()
        finally:
            self.loop.close()

    async def _main(self, started: threading.Event) -> None:
        self._wakeup = asyncio.Event()
        server = await asyncio.start_server(
            self._serve, sock=self.socket, ssl=self._ssl,
            limit=MAX_HEADER_BYTES)
        started.set()
        try:
            while not self._stop_requested:
                await self._wakeup.wait()
        finally:
            server.close()
            # Closing a connection ends its handler at its next read.
            for writer in list(self._connections):
                writer.close()
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            if tasks:
                await asyncio.wait(tasks, timeout=1)

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`request_stop`."""
        self._run(threading.Event())

    def request_stop(self) -> None:
        """Make the server stop.

        Safe from any thread and from a signal handler, also before the
        server started serving.
        """
        self._stop_requested = True
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            pass  # The loop is closed: it has stopped already.

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _serve(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (OSError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            # The client went away or broke the framing mid-body.
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> bool:
        """Serve one request; whether the connection stays open."""
        try:
            head = await reader.readuntil(b'\r\n\r\n')
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                self._respond(writer, 400, {'error': 'incomplete request'},
                              False)
            return False
        except asyncio.LimitOverrunError:
            self._respond(writer, 431, {'error': 'request headers exceed '
                                        f'{MAX_HEADER_BYTES} bytes'}, False)
            return False
        try:
            method, path, version, headers = _parse_head(head)
        except ValueError as exc:
            self._respond(writer, 400, {'error': str(exc)}, False)
            return False
        fields = {name.lower(): value for name, value in headers.items()}
        keep_alive = _keep_alive(version, fields.get('connection', ''))
        try:
            body = await _read_body(reader, fields)
        except ValueError as exc:
            self._respond(writer, 400, {'error': str(exc)}, False)
            return False
        except _TooLarge as exc:
            self._respond(writer, 413, {'error': str(exc)}, False)
            return False
        received_at = time.time()
        if method != 'POST':
            self._respond(writer, 405, {'error': f'{method} is not allowed;'
                                        f' post Aodh alarm webhooks'},
                          keep_alive, allow='POST')
        else:
            status, reply = self._accept(path, headers, body, received_at)
            if self._delay:
                # A VNF manager that takes its time to answer; other
                # connections are served meanwhile.
                await asyncio.sleep(self._delay)
            self._respond(writer, status, reply, keep_alive)
        await writer.drain()
        return keep_alive

    def _accept(self, path: str, headers: dict, raw: bytes,
                received_at: float) -> tuple[int, dict]:
        if self._verifier is not None:
            reason = self._verifier.check(headers, raw)
            if reason is not None:
                self.refused.append(reason)
                return 401, {'error': reason}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {'error': 'body is not JSON'}
        missing = [f for f in ALARM_FIELDS
                   if not isinstance(body, dict) or f not in body]
        if missing:
            return 400, {'error': 'not an Aodh alarm body; missing '
                                  + ', '.join(missing)}
        self.record(ReceivedAlarm(path, body, headers, received_at))
        return 200, {'status': 'received'}

    @staticmethod
    def _respond(writer: asyncio.StreamWriter, status: int, body: dict,
                 keep_alive: bool, allow: str | None = None) -> None:
        data = json.dumps(body).encode()
        head = [f'HTTP/1.1 {status} {http.HTTPStatus(status).phrase}',
                'Content-Type: application/json',
                f'Content-Length: {len(data)}']
        if allow:
            head.append(f'Allow: {allow}')
        if not keep_alive:
            head.append('Connection: close')
        writer.write(('\r\n'.join(head) + '\r\n\r\n').encode('latin-1')
                     + data)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self.request_stop()
            self._thread.join(5)
        self.socket.close()

    def __enter__(self) -> ConsumerServer:
        return self.start()

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.stop()


class _TooLarge(Exception):
    pass


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, target, version and headers of an HTTP/1.x request head."""
    lines = head[:-4].decode('latin-1').split('\r\n')
    parts = lines[0].split(' ')
    if len(parts) != 3 or not parts[2].startswith('HTTP/1.'):
        raise ValueError(f'not an HTTP/1.x request line: {lines[0][:80]!r}')
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(':')
        if not sep or not name or name != name.strip():
            raise ValueError(f'malformed header line: {line[:80]!r}')
        headers[name] = value.strip()
    return parts[0], parts[1], parts[2], headers


def _keep_alive(version: str, connection: str) -> bool:
    tokens = {t.strip().lower() for t in connection.split(',')}
    if version == 'HTTP/1.0':
        return 'keep-alive' in tokens
    return 'close' not in tokens


async def _read_body(reader: asyncio.StreamReader,
                     fields: dict[str, str]) -> bytes:
    """The request body, by Content-Length or chunked encoding."""
    if 'chunked' in fields.get('transfer-encoding', '').lower():
        chunks: list[bytes] = []
        size = 0
        while True:
            line = await reader.readuntil(b'\r\n')
            try:
                length = int(line.split(b';', 1)[0], 16)
            except ValueError:
                raise ValueError('malformed chunk size') from None
            size += length
            if size > MAX_BODY_BYTES:
                raise _TooLarge(f'body exceeds {MAX_BODY_BYTES} bytes')
            if not length:
                # Trailers, up to the empty line.
                while (await reader.readuntil(b'\r\n')) != b'\r\n':
                    pass
                return b''.join(chunks)
            chunks.append(await reader.readexactly(length))
            await reader.readexactly(2)
    try:
        length = int(fields.get('content-length') or 0)
    except ValueError:
        raise ValueError('Content-Length is not a number') from None
    if length < 0:
        raise ValueError('Content-Length is negative')
    if length > MAX_BODY_BYTES:
        raise _TooLarge(f'body of {length} bytes exceeds {MAX_BODY_BYTES}')
    return await reader.readexactly(length) if length else b''


class ConsumerProcess(AlarmLog):
    """A :class:`ConsumerServer` in a process of its own.

    A tenant's VNF manager does not share the inspector's interpreter; the
    benchmark runs the consumer this way so that its request parsing does
    not compete with the chain for the GIL. Each alarm comes back over a
    pipe, with the time the consumer received it.
    """

    def __init__(self, on_alarm: typing.Callable[[ReceivedAlarm], None]
                 | None = None, keep: bool = True) -> None:
        super().__init__(on_alarm, keep)
        self._child = childproc.ChildServer('doctor_plugin.testing.consumer',
                                            what='the consumer process')
        self._reader: threading.Thread | None = None
        self.url = ''

    def start(self) -> ConsumerProcess:
        self.url = self._child.start()['url']
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name='doctor-consumer-reader')
        self._reader.start()
        return self

    @property
    def pid(self) -> int | None:
        """The process's id while it runs (for its CPU use)."""
        proc = self._child.proc
        return proc.pid if proc is not None else None

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
    pending: list[str] = []

    def flush() -> None:
        sys.stdout.write(''.join(pending))
        sys.stdout.flush()
        pending.clear()

    def on_alarm(alarm: ReceivedAlarm) -> None:
        # Called in the loop, before the reply: written once the loop is
        # free, a burst's alarms in one write.
        if not pending:
            server.loop.call_soon(flush)
        # Not dataclasses.asdict: its deep copy of the body was two thirds
        # of this process's CPU per alarm.
        pending.append(json.dumps({
            'path': alarm.path, 'body': alarm.body, 'headers': alarm.headers,
            'received_at': alarm.received_at}) + '\n')

    # The parent keeps them; kept here too, a benchmark's hundreds of
    # thousands of alarms would make every full GC pass slower.
    server = ConsumerServer(on_alarm=on_alarm, keep=False)
    signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    sys.stdout.write(json.dumps({'url': server.url}) + '\n')
    sys.stdout.flush()
    server.serve_forever()
    if pending:
        flush()
    server.socket.close()


if __name__ == '__main__':
    main()
