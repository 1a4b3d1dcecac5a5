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

"""A BMC stand-in: IPMI 2.0 over RMCP+ on loopback UDP.

Fencing (:mod:`doctor_plugin.fencers`) powers a failed host off through
its baseboard management controller. This is a real IPMI server, built on
pyghmi's own (:class:`pyghmi.ipmi.bmc.Bmc`), that holds the power state
of a simulated host and can misbehave on demand: take a while to power
off, refuse to (an IPMI completion code), or stop answering altogether.
It records every chassis control request and every power change, with
wall-clock times comparable to the Nova stand-in's.

:class:`BmcServer` serves one or more :class:`StandInBmc` (one per UDP
port) from a thread of this process; :class:`BmcProcess` runs them in a
process of their own (``python -m doctor_plugin.testing.bmc``), which
prints a JSON ready line like the other child servers, reports requests
and changes as JSON lines and takes its knobs as JSON lines on stdin.

pyghmi's server needs three fixes to serve pyghmi's client, and several
BMCs at once, which :class:`StandInBmc` makes:

- it answers every RMCP+ open session request as if cipher suite 3
  (HMAC-SHA1) had been proposed, while the client proposes suite 17
  (SHA-256) first: this BMC refuses other suites, as a suite-3-only BMC
  does, and the client falls back;
- when a client reuses a UDP source port for a new session, it forgets
  that address's sessions with *every* BMC of the process, and then
  fails on their next packet: only this BMC's session is dropped here;
- a server bound to port 0 keeps 0 as its port and misroutes sessions:
  the bound port is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import struct
import sys
import threading
import time
import typing

from oslo_log import log as logging
from pyghmi.ipmi import bmc as pyghmi_bmc
from pyghmi.ipmi.private import constants
from pyghmi.ipmi.private import serversession
from pyghmi.ipmi.private import session as pyghmi_session

from doctor_plugin.testing import childproc

LOG = logging.getLogger(__name__)

#: The completion code of a refused power off by default: "command not
#: supported in present state".
REFUSED = 0xd5

#: Chassis control directives (IPMI 2.0, table 28-4) by their data byte.
DIRECTIVES = {0: 'off', 1: 'on', 2: 'cycle', 3: 'reset', 4: 'diag',
              5: 'shutdown'}

#: The RMCP+ status "no cipher suite match with proposed algorithms".
_NO_CIPHER_SUITE_MATCH = 0x11
#: The RAKP status "unauthorized name".
_UNAUTHORIZED_NAME = 0x0d
#: RAKP-HMAC-SHA1 and HMAC-SHA1-96: cipher suite 3's algorithms.
_SHA1 = 1

#: How long one turn of the serving loop waits for packets, in seconds:
#: also how long :meth:`BmcServer.stop` may wait for it.
SERVE_TICK = 0.1


@dataclasses.dataclass(frozen=True, slots=True)
class PowerRequest:
    """One chassis control request the BMC answered (or ignored).

    :param at: when it arrived (``time.time()``)
    :param action: ``off``, ``on``, ``cycle``, ``reset``, ``diag`` or
        ``shutdown``
    :param code: the completion code answered, 0 when accepted
    """

    port: int
    at: float
    action: str
    code: int

    @property
    def accepted(self) -> bool:
        return self.code == 0


@dataclasses.dataclass(frozen=True, slots=True)
class PowerChange:
    """The simulated host's power became ``state`` at ``at``."""

    port: int
    at: float
    state: str


class _Session(serversession.ServerSession):
    """One client's RMCP+ session with a :class:`StandInBmc`."""

    bmc: StandInBmc

    def create_open_session_response(self, request: bytearray) -> bytearray:
        # Request: tag, privilege, 2 reserved, console session id (4),
        # then the authentication, integrity and confidentiality payloads
        # of 8 bytes each, the algorithm in their fifth byte.
        if len(request) < 32 or request[12] != _SHA1 or request[20] != _SHA1:
            return (bytearray([request[0], _NO_CIPHER_SUITE_MATCH, 0, 0])
                    + bytearray(request[4:8]))
        return super().create_open_session_response(request)

    def _got_rakp1(self, data: typing.Any) -> None:
        # pyghmi ignores an unknown user, and the client waits in vain: a
        # BMC answers RAKP 2 with "unauthorized name".
        name = bytes(data[28:28 + data[27]]) if len(data) > 27 else b''
        if name and self.authdata.get(name.decode('utf-8', 'replace')) \
                is None:
            self.send_payload(
                bytearray([data[0], _UNAUTHORIZED_NAME, 0, 0])
                + self.clientsessionid,
                constants.payload_types['rakp2'], retry=False)
            return
        super()._got_rakp1(data)

    def sessionless_data(self, data: bytes | bytearray,
                         sockaddr: typing.Any) -> None:
        # A packet of a client whose session this BMC dropped.
        self.bmc.sessionless_data(data, sockaddr)

    def _handle_ipmi_packet(self, data: bytearray, sockaddr=None,
                            qent=None) -> typing.Any:
        if self.bmc.silent:
            return None
        if (data[4] in (0, 2) and len(data) >= 13
                and struct.unpack('<II', bytes(data[5:13])) == (0, 0)):
            # A new client on a source port an old session used: forget
            # that session, with this BMC only, and start over.
            handlers = pyghmi_session.Session.bmc_handlers.get(sockaddr, {})
            if handlers.get(self.bmc.port) is self:
                del handlers[self.bmc.port]
                if not handlers:
                    pyghmi_session.Session.bmc_handlers.pop(sockaddr, None)
            self.bmc.sessionless_data(data, sockaddr)
            return None
        return super()._handle_ipmi_packet(data, sockaddr, qent)


class StandInBmc(pyghmi_bmc.Bmc):
    """The BMC of one simulated host, on one UDP port.

    Its knobs may be turned at any time, from any thread.

    :param username: the one IPMI user it knows
    :param password: that user's password
    :param port: its UDP port (0: a free one; :attr:`port` says which)
    :param address: the address it listens on
    :param power: the host's power at start, ``on`` or ``off``
    :param on_record: called with each :class:`PowerRequest` and
        :class:`PowerChange` as it is recorded
    """

    def __init__(self, username: str, password: str, port: int = 0,
                 address: str = '127.0.0.1', power: str = 'on',
                 on_record: typing.Callable[[PowerRequest | PowerChange],
                                            None] | None = None) -> None:
        if power not in ('on', 'off'):
            raise ValueError(f'power must be on or off, not {power!r}')
        _ensure_client_socket()
        super().__init__({username: password}, port=port, address=address)
        self.port = self.serversocket.getsockname()[1]
        self.address = address
        self._lock = threading.Lock()
        self._power = power
        self._off_at: float | None = None
        self._requests: list[PowerRequest] = []
        self._changes: list[PowerChange] = []
        self._on_record = on_record
        #: Seconds between an accepted power off and the host being off.
        self.power_off_delay = 0.0
        #: The completion code a power off is answered with (0: accept).
        self.power_off_code = 0
        #: When set, the BMC answers nothing at all.
        self.silent = False
        self.closed = False

    # -- knobs --------------------------------------------------------------

    def refuse_power_off(self, code: int | None = REFUSED) -> None:
        """Answer power off requests with ``code``; None to accept them."""
        self.power_off_code = code or 0

    def set_power(self, state: str) -> None:
        """Put the simulated host in ``state`` at once (test set-up)."""
        if state not in ('on', 'off'):
            raise ValueError(f'power must be on or off, not {state!r}')
        with self._lock:
            self._settle()
            self._off_at = None
            self._change(state, time.time())

    @property
    def power(self) -> str:
        """The simulated host's power now, ``on`` or ``off``."""
        with self._lock:
            self._settle()
            return self._power

    def requests(self) -> list[PowerRequest]:
        """The chassis control requests received, oldest first."""
        with self._lock:
            return list(self._requests)

    def changes(self) -> list[PowerChange]:
        """The power changes of the simulated host, oldest first."""
        with self._lock:
            self._settle()
            return list(self._changes)

    # -- pyghmi's Bmc -------------------------------------------------------

    def get_power_state(self) -> str:
        return self.power

    def power_off(self) -> int:
        now = time.time()
        with self._lock:
            self._settle()
            code = self.power_off_code
            self._record(PowerRequest(self.port, now, 'off', code))
            if code == 0 and self._power == 'on' and self._off_at is None:
                if self.power_off_delay > 0:
                    self._off_at = now + self.power_off_delay
                else:
                    self._change('off', now)
        return code

    def power_on(self) -> int:
        now = time.time()
        with self._lock:
            self._settle()
            self._record(PowerRequest(self.port, now, 'on', 0))
            self._off_at = None
            self._change('on', now)
        return 0

    def control_chassis(self, request: dict, session: typing.Any) -> None:
        directive = int(request['data'][0]) if request['data'] else -1
        if directive in (0, 1):
            super().control_chassis(request, session)
            return
        # Other directives are not simulated: recorded and refused.
        with self._lock:
            self._record(PowerRequest(
                self.port, time.time(),
                DIRECTIVES.get(directive, str(directive)), 0xcc))
        session.send_ipmi_response(code=0xcc)

    def handle_raw_request(self, request: dict, session: typing.Any) -> None:
        if not self.silent:
            super().handle_raw_request(request, session)

    def sessionless_data(self, data: bytes | bytearray,
                         sockaddr: typing.Any) -> None:
        if self.silent or self.closed:
            return
        raw = bytearray(data)
        if (len(raw) >= 22 and raw[0] == 6 and raw[2:4] == b'\xff\x07'
                and raw[4] == 6 and raw[5] == 0x10):
            # An RMCP+ open session request: our session class, not
            # pyghmi's.
            _Session(self.authdata, self.kg, sockaddr, self.serversocket,
                     raw[16:], self.uuid, bmc=self)
            return
        super().sessionless_data(data, sockaddr)

    def get_system_guid(self) -> typing.Any:
        return self.uuid

    # -- the record ---------------------------------------------------------

    def _settle(self) -> None:
        # Called with the lock held: a delayed power off that is due.
        if self._off_at is not None and time.time() >= self._off_at:
            when, self._off_at = self._off_at, None
            self._change('off', when)

    def _change(self, state: str, when: float) -> None:
        if state != self._power:
            self._power = state
            self._record(PowerChange(self.port, when, state))

    def _record(self, item: PowerRequest | PowerChange) -> None:
        if isinstance(item, PowerRequest):
            self._requests.append(item)
        else:
            self._changes.append(item)
        if self._on_record is not None:
            self._on_record(item)

    def settle(self) -> None:
        """Record a delayed power off that is due (the serving loop's)."""
        with self._lock:
            self._settle()

    def close(self) -> None:
        """Stop listening: unhook the socket from pyghmi, then close it."""
        if self.closed:
            return
        self.closed = True
        sock = self.serversocket
        # Out of the list pyghmi's I/O thread selects on before the close:
        # a closed socket in it would end that thread.
        if sock in pyghmi_session.iosockets:
            pyghmi_session.iosockets.remove(sock)
        handlers = pyghmi_session.Session.bmc_handlers
        handlers.pop(sock, None)
        for sockaddr, by_port in list(handlers.items()):
            if (isinstance(by_port, dict)
                    and isinstance(by_port.get(self.port), _Session)
                    and by_port[self.port].bmc is self):
                del by_port[self.port]
                if not by_port:
                    handlers.pop(sockaddr, None)
        sock.close()


def _ensure_client_socket() -> None:
    """Give pyghmi a client socket before the first BMC socket.

    pyghmi wakes its I/O thread through its first socket, to its own
    loopback address: were that a BMC's IPv4 socket, every wake-up of a
    client in this process would fail.
    """
    if not pyghmi_session.iosockets:
        pyghmi_session.Session._assignsocket()


class BmcServer:
    """Serve :class:`StandInBmc`\\ s from a thread of this process.

    pyghmi runs one event loop per process, shared by its clients and
    servers: a fencer in this process also serves these BMCs while it
    waits for their answers, and this thread serves them when nothing
    else does.

    :param bmcs: the BMCs to serve; more may be added with :meth:`add`
    """

    def __init__(self, bmcs: typing.Iterable[StandInBmc] = ()) -> None:
        self.bmcs: list[StandInBmc] = list(bmcs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, username: str, password: str, port: int = 0,
            address: str = '127.0.0.1', **kwargs: typing.Any
            ) -> StandInBmc:
        """A new BMC, served from now on."""
        bmc = StandInBmc(username, password, port, address, **kwargs)
        self.bmcs.append(bmc)
        return bmc

    def start(self) -> BmcServer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve,
                                        name='bmc-stand-in', daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                pyghmi_session.Session.wait_for_rsp(SERVE_TICK)
                for bmc in self.bmcs:
                    bmc.settle()
            except Exception:
                # One bad packet must not stop the BMCs.
                LOG.exception('BMC stand-in: error serving a request')

    def stop(self) -> None:
        """Stop serving and close every BMC's socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5 + SERVE_TICK)
            self._thread = None
        for bmc in self.bmcs:
            bmc.close()

    def __enter__(self) -> BmcServer:
        return self.start()

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.stop()


class BmcProcess:
    """BMCs served by ``python -m doctor_plugin.testing.bmc``.

    BMCs are other machines: a process of their own keeps their work off
    the GIL of the process under test, and may be run in a network
    namespace. Their knobs are turned through :meth:`control`; their
    records come back as JSON lines, gathered by a thread.

    :param ports: one BMC per port (0: a free one)
    :param username: the IPMI user of every BMC
    :param password: its password
    :param power_off_delay: :attr:`StandInBmc.power_off_delay` of each
    :param idle: run it on the CPU nothing else wants (see
        :class:`doctor_plugin.testing.childproc.ChildServer`)
    """

    def __init__(self, ports: typing.Sequence[int] = (0,),
                 username: str = 'admin', password: str = 'password',
                 address: str = '127.0.0.1', power_off_delay: float = 0.0,
                 idle: bool = False, prefix: typing.Sequence[str] = ()
                 ) -> None:
        args = ['--user', username, '--password', password,
                '--address', address,
                '--power-off-delay', str(power_off_delay)]
        for port in ports:
            args += ['--port', str(port)]
        self._child = childproc.ChildServer(
            'doctor_plugin.testing.bmc', args, what='the BMC stand-in',
            idle=idle, stdin=True, prefix=prefix)
        self.address = address
        self.ports: list[int] = []
        self._cond = threading.Condition()
        self._requests: list[PowerRequest] = []
        self._changes: list[PowerChange] = []
        self._acks: set[int] = set()
        self._next_id = 0
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> BmcProcess:
        ready = self._child.start(timeout)
        self.ports = list(ready['ports'])
        self._reader = threading.Thread(target=self._read,
                                        name='bmc-process-reader',
                                        daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        try:
            for line in self._child.lines():
                with self._cond:
                    kind = line.get('event')
                    if kind == 'request':
                        self._requests.append(PowerRequest(
                            line['port'], line['at'], line['action'],
                            line['code']))
                    elif kind == 'change':
                        self._changes.append(PowerChange(
                            line['port'], line['at'], line['state']))
                    elif 'ack' in line:
                        self._acks.add(line['ack'])
                    self._cond.notify_all()
        except (ValueError, OSError):
            pass  # its output closed or cut short: it is stopping

    def control(self, timeout: float = 10.0, **knobs: typing.Any) -> None:
        """Turn knobs of its BMCs, once it has applied them.

        :param knobs: ``port`` (one BMC; every BMC when absent),
            ``power`` (``on``/``off``), ``power_off_delay`` (seconds),
            ``refuse_power_off`` (a completion code, None to accept),
            ``silent`` (bool)
        :raises RuntimeError: if it does not confirm within ``timeout``
        """
        proc = self._child.proc
        assert proc is not None and proc.stdin is not None, 'start() it'
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        proc.stdin.write(json.dumps({'id': ident, **knobs}) + '\n')
        proc.stdin.flush()
        with self._cond:
            if not self._cond.wait_for(lambda: ident in self._acks,
                                       timeout):
                raise RuntimeError(f'the BMC stand-in did not apply '
                                   f'{knobs} within {timeout} s')

    def requests(self, port: int | None = None) -> list[PowerRequest]:
        with self._cond:
            return [r for r in self._requests
                    if port is None or r.port == port]

    def changes(self, port: int | None = None) -> list[PowerChange]:
        with self._cond:
            return [c for c in self._changes
                    if port is None or c.port == port]

    def wait_for_change(self, port: int, state: str,
                        timeout: float) -> PowerChange | None:
        """The first change of ``port`` to ``state``, waited for."""
        def found() -> PowerChange | None:
            return next((c for c in self._changes
                         if c.port == port and c.state == state), None)
        with self._cond:
            self._cond.wait_for(found, timeout)
            return found()

    def stop(self) -> None:
        self._child.stop()
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None

    def __enter__(self) -> BmcProcess:
        return self.start()

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.stop()


def _record_line(item: PowerRequest | PowerChange) -> dict[str, typing.Any]:
    if isinstance(item, PowerRequest):
        return {'event': 'request', 'port': item.port, 'at': item.at,
                'action': item.action, 'code': item.code}
    return {'event': 'change', 'port': item.port, 'at': item.at,
            'state': item.state}


def _apply(bmcs: typing.Sequence[StandInBmc],
           knobs: dict[str, typing.Any]) -> None:
    port = knobs.get('port')
    for bmc in bmcs:
        if port is not None and bmc.port != port:
            continue
        if 'power_off_delay' in knobs:
            bmc.power_off_delay = float(knobs['power_off_delay'])
        if 'refuse_power_off' in knobs:
            bmc.refuse_power_off(knobs['refuse_power_off'])
        if 'silent' in knobs:
            bmc.silent = bool(knobs['silent'])
        if 'power' in knobs:
            bmc.set_power(knobs['power'])


def main(argv: list[str] | None = None) -> None:
    """Serve BMC stand-ins until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog='python -m doctor_plugin.testing.bmc',
        description='IPMI 2.0 BMC stand-ins of simulated hosts, on UDP. '
                    'Prints {"address", "ports"} when ready, then one JSON '
                    'line per power request and power change; reads knobs '
                    'as JSON lines on stdin ({"id": 1, "port": N, '
                    '"refuse_power_off": 213}), confirmed with '
                    '{"ack": id}.')
    parser.add_argument('--address', default='127.0.0.1')
    parser.add_argument('--port', type=int, action='append',
                        help='a BMC on this UDP port (0: a free one); '
                             'repeat for several (default: one on a free '
                             'port)')
    parser.add_argument('--user', default='admin')
    parser.add_argument('--password', default='password')
    parser.add_argument('--power', choices=('on', 'off'), default='on',
                        help="the simulated hosts' power at start")
    parser.add_argument('--power-off-delay', type=float, default=0.0,
                        help='seconds from an accepted power off until '
                             'the host is off')
    parser.add_argument('--refuse-power-off', type=int, metavar='CODE',
                        help='answer power off with this completion code')
    parser.add_argument('--silent', action='store_true',
                        help='answer nothing')
    args = parser.parse_args(argv)

    out_lock = threading.Lock()

    def say(line: dict[str, typing.Any]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(line) + '\n')
            sys.stdout.flush()

    server = BmcServer()
    for port in args.port or [0]:
        bmc = server.add(args.user, args.password, port, args.address,
                         power=args.power,
                         on_record=lambda item: say(_record_line(item)))
        _apply([bmc], {'power_off_delay': args.power_off_delay,
                       'refuse_power_off': args.refuse_power_off,
                       'silent': args.silent})
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())

    def read_knobs() -> None:
        for raw in sys.stdin:
            try:
                knobs = json.loads(raw)
                _apply(server.bmcs, knobs)
            except (ValueError, TypeError, AttributeError) as exc:
                print(f'bad knob line {raw.strip()!r}: {exc}',
                      file=sys.stderr)
                continue
            if 'id' in knobs:
                say({'ack': knobs['id']})

    server.start()
    say({'address': args.address, 'ports': [b.port for b in server.bmcs]})
    threading.Thread(target=read_knobs, name='bmc-knobs',
                     daemon=True).start()
    try:
        while not done.wait(1):
            pass
    finally:
        server.stop()


if __name__ == '__main__':
    main()
