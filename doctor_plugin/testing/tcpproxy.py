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

"""A TCP relay on loopback that a test can cut, to partition one process.

A member of a cluster reaches its coordinator (Redis) through a
:class:`TcpProxy` of its own. The test then cuts that member off while the
process and every other member go on::

    proxy = TcpProxy('127.0.0.1', 6379).start()
    # ... the process connects to 127.0.0.1:<proxy.port> ...
    proxy.cut('blackhole')   # bytes stop flowing both ways; sockets stay
    proxy.restore()          # what was held flows again
    proxy.stop()

Two ways to cut, as a network fails:

``blackhole``
    A partition: nothing is read from either side any more, so what the
    process sends waits in the kernel's buffers and it gets no answer, as
    when packets are dropped. New connections are accepted and then held
    in the same way. :meth:`restore` lets the held bytes through.
``reset``
    A peer that went away: every connection is reset (RST) and new ones
    are reset as soon as they are accepted, until :meth:`restore`.

One thread relays every connection of a proxy with non-blocking sockets,
so a slow reader on one side never stalls the others.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import struct
import threading
import typing

MODES = ('blackhole', 'reset')
_CHUNK = 65536
# Stop reading a side while this much of what it sent still waits for the
# other side to take it, so a relay never holds more than this per way.
_HIGH_WATER = 1 << 20


class _Pipe:
    """One relayed connection: the client side and the upstream side."""

    def __init__(self, client: socket.socket,
                 upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        # Bytes read from one side and not yet written to the other.
        self.pending: dict[socket.socket, bytearray] = {
            client: bytearray(), upstream: bytearray()}
        self.eof: set[socket.socket] = set()

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.client else self.client

    def sockets(self) -> tuple[socket.socket, socket.socket]:
        return self.client, self.upstream


class TcpProxy:

    """Relay ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``.

    :param listener: a listening socket to relay from instead of a new one
        on ``listen_host`` (a free port): one bound in another network
        namespace, for instance; the proxy closes it when it stops
    """

    def __init__(self, upstream_host: str, upstream_port: int,
                 listen_host: str = '127.0.0.1',
                 connect_timeout: float = 2.0,
                 listener: socket.socket | None = None) -> None:
        self.upstream = (upstream_host, int(upstream_port))
        self.listen_host = listen_host
        self.connect_timeout = connect_timeout
        self.mode: str | None = None
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._given_listener = listener
        self._selector = selectors.DefaultSelector()
        self._pipes: dict[socket.socket, _Pipe] = {}
        # Accepted while cut off: held, unread, until restored or stopped.
        self._held: list[socket.socket] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._lock = threading.Lock()
        self._commands: list[tuple[str, threading.Event]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False

    # Control, from any thread.

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError('the proxy is not started; call start()')
        return self._listener.getsockname()[1]

    @property
    def connections(self) -> int:
        """How many connections are relayed (or held) now."""
        with self._lock:
            return len({id(p) for p in self._pipes.values()}) + len(
                self._held)

    def start(self) -> TcpProxy:
        listener = self._given_listener
        if listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.listen_host, 0))
            listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, 'accept')
        self._selector.register(self._wake_r, selectors.EVENT_READ, 'wake')
        self._thread = threading.Thread(
            target=self._run, name=f'tcpproxy-{self.port}', daemon=True)
        self._thread.start()
        return self

    def cut(self, mode: str = 'blackhole') -> None:
        """Cut every connection, now and new ones, until :meth:`restore`.

        :raises ValueError: for a mode other than those of :data:`MODES`
        """
        if mode not in MODES:
            raise ValueError(f'unknown cut mode {mode!r}; use one of '
                             f'{", ".join(MODES)}')
        self._command(mode)

    def restore(self) -> None:
        """Let bytes flow again; held connections are relayed now."""
        self._command('restore')

    def stop(self) -> None:
        """Close every connection and the listening socket."""
        if self._thread is None:
            return
        self._command('stop')
        self._thread.join(5)
        self._thread = None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: typing.Any) -> None:
        self.stop()

    def _command(self, name: str) -> None:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError('the proxy is not running; call start()')
        done = threading.Event()
        with self._lock:
            self._commands.append((name, done))
        self._wake_w.send(b'x')
        if not done.wait(5):
            raise RuntimeError(f'the proxy did not apply {name!r} in 5 s')

    # The relay thread.

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, events in self._selector.select(1.0):
                    if key.data == 'wake':
                        self._apply_commands()
                    elif key.data == 'accept':
                        self._accept()
                    else:
                        self._relay(key.fileobj, events)
        finally:
            self._close_all(reset=False)
            for sock in (self._listener, self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            self._selector.close()

    def _apply_commands(self) -> None:
        try:
            self._wake_r.recv(4096)
        except BlockingIOError:
            pass
        with self._lock:
            commands, self._commands = self._commands, []
        for name, done in commands:
            if name == 'stop':
                self._stopping = True
            elif name == 'reset':
                self.mode = 'reset'
                self._close_all(reset=True)
            elif name == 'blackhole':
                self.mode = 'blackhole'
                for pipe in set(self._pipes.values()):
                    self._reregister(pipe)
            elif name == 'restore':
                self.mode = None
                held, self._held = self._held, []
                for client in held:
                    self._open(client)
                for pipe in set(self._pipes.values()):
                    self._reregister(pipe)
            done.set()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            self.accepted += 1
            if self.mode == 'reset':
                _reset(client)
            elif self.mode == 'blackhole':
                with self._lock:
                    self._held.append(client)
            else:
                self._open(client)

    def _open(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream,
                                                self.connect_timeout)
        except OSError:
            # As the server itself would answer: the connection is
            # refused, so the client sees a reset, not a hang.
            _reset(client)
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipe = _Pipe(client, upstream)
        with self._lock:
            self._pipes[client] = pipe
            self._pipes[upstream] = pipe
        self._reregister(pipe)

    def _wanted(self, pipe: _Pipe, sock: socket.socket) -> int:
        """The events ``sock`` waits for, given the mode and buffers."""
        if self.mode == 'blackhole':
            return 0
        events = 0
        peer = pipe.peer(sock)
        if sock not in pipe.eof and len(pipe.pending[sock]) < _HIGH_WATER:
            events |= selectors.EVENT_READ
        if pipe.pending[peer]:
            events |= selectors.EVENT_WRITE
        return events

    def _relay(self, sock: typing.Any, events: int) -> None:
        pipe = self._pipes.get(sock)
        if pipe is None or self.mode == 'blackhole':
            # Closed, or cut off by a command earlier in this same turn.
            return
        peer = pipe.peer(sock)
        try:
            if events & selectors.EVENT_READ:
                data = sock.recv(_CHUNK)
                if data:
                    pipe.pending[sock] += data
                else:
                    pipe.eof.add(sock)
            if events & selectors.EVENT_WRITE and pipe.pending[peer]:
                sent = sock.send(pipe.pending[peer])
                del pipe.pending[peer][:sent]
            # Write what just came in at once, if the other side takes it.
            if pipe.pending[sock]:
                try:
                    sent = peer.send(pipe.pending[sock])
                    del pipe.pending[sock][:sent]
                except BlockingIOError:
                    pass
            for side in pipe.sockets():
                if (side in pipe.eof and not pipe.pending[side]):
                    other = pipe.peer(side)
                    with contextlib.suppress(OSError):
                        other.shutdown(socket.SHUT_WR)
        except (ConnectionError, OSError) as exc:
            if getattr(exc, 'errno', None) in (errno.EAGAIN,
                                               errno.EWOULDBLOCK):
                return
            self._close(pipe, reset=True)
            return
        if pipe.eof == set(pipe.sockets()) and not any(
                pipe.pending.values()):
            self._close(pipe, reset=False)
            return
        self._reregister(pipe)

    def _reregister(self, pipe: _Pipe) -> None:
        """Register the pipe's sockets for what they wait for now.

        A socket waiting for nothing (cut off, or its buffer full) is out
        of the selector until it waits for something again.
        """
        for sock in pipe.sockets():
            events = self._wanted(pipe, sock)
            registered = self._registered(sock)
            if events and registered:
                if self._selector.get_key(sock).events != events:
                    self._selector.modify(sock, events, pipe)
            elif events:
                self._selector.register(sock, events, pipe)
            elif registered:
                self._selector.unregister(sock)

    def _registered(self, sock: socket.socket) -> bool:
        try:
            self._selector.get_key(sock)
        except KeyError:
            return False
        return True

    def _close(self, pipe: _Pipe, reset: bool) -> None:
        for sock in pipe.sockets():
            if self._registered(sock):
                self._selector.unregister(sock)
            with self._lock:
                self._pipes.pop(sock, None)
            if reset:
                _reset(sock)
            else:
                sock.close()

    def _close_all(self, reset: bool) -> None:
        for pipe in set(self._pipes.values()):
            self._close(pipe, reset)
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            if reset:
                _reset(sock)
            else:
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST, as a peer that went away does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack('ii', 1, 0))
    except OSError:
        pass
    sock.close()
