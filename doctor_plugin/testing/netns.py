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

"""A small multi-host network on one machine, in network namespaces.

OPNFV Doctor's fault scenarios are network faults on real machines: a
compute host's link set down (``ip link set <dev> down`` on the host),
packet loss on one network (``tc qdisc ... netem loss``), a host cut off
from everything. A :class:`Testbed` builds such machines with iproute2,
so that the monitors, the inspector and the hosts they watch talk over
real interfaces that a test can break::

    with netns.Testbed(planes=('management', 'tenant')) as testbed:
        host = testbed.add_node('compute-0')
        monitor = testbed.add_node('monitor-0', planes=('management',))
        proc = monitor.popen([...])          # runs inside monitor-0
        monitor.forward_loopback(5672)       # RabbitMQ on root loopback
        t00 = host.link_down('management')   # the fault instant
        host.netem('tenant', loss_percent=30)

The network
    Every node is a namespace ``dp-<pid>-<rand>-<node>``. Each network
    *plane* is one bridge (``br<i>``) in the testbed's own switch
    namespace ``dp-<pid>-<rand>-switch``; a node on that plane has an
    interface named after the plane, one end of a veth pair whose other
    end (``p<i>n<j>``) is a port of the bridge. Nothing is added to the
    root namespace, and ``lo`` is up in every namespace.
Addresses
    Only 198.18.0.0/15 (RFC 2544's benchmarking range): plane ``i``
    (0-based, in the order given) is ``198.18.i.0/24`` (planes 256 and
    up continue in 198.19.0.0/16) and node ``j`` (0-based, in the order
    added) is ``.10+j`` on every plane it is on. Different testbeds use
    the same addresses in different namespaces, so they never meet.
Faults
    :meth:`Node.link_down` sets the node's end down inside its
    namespace; :meth:`Node.netem` impairs both ends of the node's veth
    pair so that each direction (the node's packets out and the packets
    to it) loses ``loss_percent`` and is delayed by ``delay_ms``.
    Where the kernel has no netem qdisc (``CONFIG_NET_SCH_NETEM``),
    loss is made by a classic BPF filter that drops each packet with
    that probability; delay then cannot be made and is refused
    (:func:`netem_problem` says so).
Root loopback
    RabbitMQ, Redis, PostgreSQL and the test servers listen on the root
    namespace's 127.0.0.1. :meth:`Node.forward_loopback` makes a port of
    the node's own 127.0.0.1 reach the same port there, through a relay
    process (:mod:`doctor_plugin.testing.nsrelay`) that listens inside
    the namespace and connects in the root one; the relay follows the
    node's faults (see :meth:`Node.forward_loopback`).
Clean-up
    :meth:`Testbed.close` (the context manager's exit) stops the
    processes started in the nodes and deletes every namespace, also
    when the test failed. What a killed run left is removed by
    :func:`remove_stale` (``python -m doctor_plugin.testing.netns``),
    which knows a testbed's creator from the pid in its names.

It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2; a test
calls ``self.require(netns.capability_problem())`` first, which skips on
a developer's machine and fails under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import ipaddress
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import typing

from doctor_plugin import exceptions
from doctor_plugin.testing import childproc

#: How every namespace of a testbed is named first.
PREFIX = 'dp-'
#: The addresses of every testbed.
NETWORK = ipaddress.ip_network('198.18.0.0/15')
#: The last octet of node 0 on every plane.
FIRST_HOST = 10
MAX_NODES = 254 - FIRST_HOST + 1
MAX_PLANES = 2 ** (24 - NETWORK.prefixlen)
#: Where ``ip netns`` keeps its namespaces.
NETNS_DIR = '/run/netns'
#: Linux's IFNAMSIZ less the terminating NUL.
IFNAME_MAX = 15
#: How long one iproute2 command may take, in seconds.
COMMAND_TIMEOUT = 30.0
#: How long a process started in a node has to exit on SIGTERM.
STOP_TIMEOUT = 5.0

_PLANE = re.compile(r'[a-z][a-z0-9_]{0,14}\Z')
_NODE = re.compile(r'[a-z0-9][a-z0-9-]{0,31}\Z')
_RESERVED_NODES = ('switch', 'probe')
_RAND_ALPHABET = string.ascii_lowercase + string.digits
_RAND_LEN = 4
_CLONE_NEWNET = 0x40000000
# Classic BPF: SKF_AD_OFF + SKF_AD_RANDOM, the "ld rand" extension.
_BPF_LD_RANDOM = (-0x1000 + 56) & 0xffffffff
_TC_ACT_SHOT = 2
_TC_ACT_UNSPEC = 0xffffffff


class TestbedError(exceptions.DoctorPluginError):
    """A command that builds or changes a testbed failed."""


# The address plan and the names: pure, and checked by unit tests.

def plane_subnet(plane_index: int) -> ipaddress.IPv4Network:
    """The /24 of plane ``plane_index`` (0-based)."""
    if not 0 <= plane_index < MAX_PLANES:
        raise ValueError(f'a testbed has at most {MAX_PLANES} planes')
    network = NETWORK.network_address + (plane_index << 8)
    return ipaddress.IPv4Network(f'{network}/24')


def node_address(plane_index: int, node_index: int) -> str:
    """The address of node ``node_index`` on plane ``plane_index``."""
    if not 0 <= node_index < MAX_NODES:
        raise ValueError(f'a testbed has at most {MAX_NODES} nodes')
    subnet = plane_subnet(plane_index)
    return str(subnet.network_address + FIRST_HOST + node_index)


def check_plane_name(name: str) -> str:
    """``name`` if it can name a plane (and the node's interface on it).

    :raises ValueError: if it is not 1-15 lower-case letters, digits or
        ``_`` starting with a letter, or is ``lo``
    """
    if not _PLANE.match(name) or name == 'lo':
        raise ValueError(
            f'plane name {name!r} cannot name an interface: use 1 to '
            f'{IFNAME_MAX} lower-case letters, digits or "_", starting '
            f'with a letter (not "lo")')
    return name


def check_node_name(name: str) -> str:
    """``name`` if it can name a node (and end its namespace's name).

    :raises ValueError: if it is not 1-32 lower-case letters, digits or
        ``-`` starting with a letter or digit, or is reserved
    """
    if not _NODE.match(name) or name in _RESERVED_NODES:
        raise ValueError(
            f'node name {name!r} is not usable: use 1 to 32 lower-case '
            f'letters, digits or "-", not {" or ".join(_RESERVED_NODES)}')
    return name


def new_token(pid: int | None = None, rand: str | None = None) -> str:
    """A testbed's ``<pid>-<rand>``, unique among the machine's testbeds.

    The pid (of the creating process) lets :func:`remove_stale` tell a
    killed run's leftovers from a running test's testbed.
    """
    if pid is None:
        pid = os.getpid()
    if rand is None:
        rand = ''.join(secrets.choice(_RAND_ALPHABET)
                       for _ in range(_RAND_LEN))
    return f'{pid}-{rand}'


def namespace_name(token: str, node: str, prefix: str = PREFIX) -> str:
    """The namespace of ``node`` (or ``switch``) in testbed ``token``."""
    return f'{prefix}{token}-{node}'


def bridge_name(plane_index: int) -> str:
    """The bridge of plane ``plane_index`` in the switch namespace."""
    return f'br{plane_index}'


def switch_port_name(plane_index: int, node_index: int) -> str:
    """The switch's end of the veth of node ``node_index`` on a plane."""
    return f'p{plane_index}n{node_index}'


def creator_pid(namespace: str, prefix: str = PREFIX) -> int | None:
    """The pid in a testbed namespace's name; None if not one of ours."""
    found = re.match(re.escape(prefix) + r'(\d+)-[a-z0-9]{%d}-' % _RAND_LEN,
                     namespace)
    return int(found.group(1)) if found else None


def parse_netns_list(output: str) -> list[str]:
    """The namespace names of ``ip netns list``'s output."""
    return [line.split()[0] for line in output.splitlines() if line.strip()]


def loss_bytecode(loss_percent: float) -> str:
    """A classic BPF program for ``tc ... bpf da bytecode``.

    It drops each packet with probability ``loss_percent`` / 100: it
    loads a random 32-bit number and drops the packet when the number
    is below that fraction of 2**32.
    """
    threshold = min(round(loss_percent / 100 * 2 ** 32), 2 ** 32 - 1)
    program = [
        (0x20, 0, 0, _BPF_LD_RANDOM),   # ld rand
        (0x35, 1, 0, threshold),         # jge #threshold, pass
        (0x06, 0, 0, _TC_ACT_SHOT),      # ret drop
        (0x06, 0, 0, _TC_ACT_UNSPEC),    # pass: ret (continue)
    ]
    return ','.join([str(len(program))] + [
        f'{code} {jt} {jf} {k}' for code, jt, jf, k in program])


def impairment_commands(device: str, loss_percent: float | None = None,
                        delay_ms: float | None = None,
                        jitter_ms: float | None = None,
                        with_netem: bool = True) -> list[str]:
    """``tc -batch`` lines that impair ``device``'s egress.

    With netem, one ``netem`` root qdisc; without, a ``clsact`` qdisc and
    the random-drop filter of :func:`loss_bytecode` (loss only).

    :raises ValueError: for a loss outside 0-100, a negative delay, a
        jitter without delay, nothing to do, or delay without netem
    """
    if loss_percent is not None and not 0 <= loss_percent <= 100:
        raise ValueError(f'loss_percent must be within 0-100, not '
                         f'{loss_percent}')
    for name, value in (('delay_ms', delay_ms), ('jitter_ms', jitter_ms)):
        if value is not None and value < 0:
            raise ValueError(f'{name} must not be negative, not {value}')
    if jitter_ms and not delay_ms:
        raise ValueError('jitter_ms needs a delay_ms')
    if loss_percent is None and delay_ms is None:
        raise ValueError('give loss_percent, delay_ms or both')
    if with_netem:
        line = f'qdisc replace dev {device} root netem'
        if delay_ms is not None:
            line += f' delay {delay_ms:g}ms'
            if jitter_ms:
                line += f' {jitter_ms:g}ms'
        if loss_percent is not None:
            line += f' loss {loss_percent:g}%'
        return [line]
    if delay_ms:
        raise ValueError('delay needs the netem qdisc, which this kernel '
                         'lacks; ' + NETEM_ADVICE)
    return [f'qdisc add dev {device} clsact',
            f'filter add dev {device} egress pref 1 bpf da bytecode '
            f'"{loss_bytecode(loss_percent or 0)}"']


def clear_commands(device: str, with_netem: bool = True) -> list[str]:
    """``tc -batch`` lines that undo :func:`impairment_commands`."""
    if with_netem:
        return [f'qdisc del dev {device} root']
    return [f'qdisc del dev {device} clsact']


NETEM_ADVICE = ('load it (modprobe sch_netem, package linux-modules-extra '
                'on Ubuntu) or use a kernel built with '
                'CONFIG_NET_SCH_NETEM')


# Running iproute2 and entering namespaces.

def _run(argv: typing.Sequence[str], lines: typing.Sequence[str] = (),
         check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (with ``lines`` on stdin for ``-batch -``)."""
    argv = list(argv)
    stdin = ''.join(f'{line}\n' for line in lines)
    try:
        done = subprocess.run(argv, input=stdin,
                              capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TestbedError(f'{" ".join(argv)} failed: {exc}') from exc
    if check and done.returncode:
        said = (done.stderr or done.stdout).strip()
        raise TestbedError(
            f'{" ".join(argv)} failed with status {done.returncode}: '
            f'{said}' + (f' (input: {"; ".join(lines)})' if lines else ''))
    return done


#: The real-time priority (SCHED_RR) of the commands that inject a fault:
#: on a loaded machine, a command at normal priority may start tens of
#: milliseconds after the fault instant its caller took.
FAULT_PRIORITY = 50


def _ip_batch(namespace: str | None, lines: typing.Sequence[str],
              tool: str = 'ip', check: bool = True, fault: bool = False
              ) -> subprocess.CompletedProcess[str]:
    """``ip``/``tc`` ``[-n namespace] -batch -`` fed with ``lines``.

    :param fault: the lines inject or end a fault: run them at
        :data:`FAULT_PRIORITY` (with ``chrt``, where there is one)
    """
    argv = [tool] + (['-n', namespace] if namespace else [])
    if fault and shutil.which('chrt'):
        argv = ['chrt', '--rr', str(FAULT_PRIORITY)] + argv
    if not check:
        argv.append('-force')
    return _run(argv + ['-batch', '-'], lines, check=check)


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f'setns: {os.strerror(err)}')


@contextlib.contextmanager
def entered(namespace: str) -> typing.Iterator[None]:
    """Run the block in network namespace ``namespace``, in this thread.

    A socket belongs to the namespace it was created in, whichever thread
    uses it later, so a socket made in the block stays the namespace's.
    Only the calling thread moves (threads started in the block would
    stay in the namespace); it comes back at the end of the block.
    """
    path = namespace if '/' in namespace else os.path.join(NETNS_DIR,
                                                           namespace)
    home = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    """The names ``ip netns list`` shows."""
    return parse_netns_list(_run(['ip', 'netns', 'list']).stdout)


def _kill_namespace_processes(namespaces: typing.Iterable[str]) -> None:
    for namespace in namespaces:
        pids = _run(['ip', 'netns', 'pids', namespace], check=False).stdout
        for pid in pids.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def delete_namespaces(namespaces: typing.Sequence[str]) -> None:
    """Kill what runs in ``namespaces``, then delete them (and their links).

    Deleting a namespace deletes its interfaces and so the veth peers in
    other namespaces; a namespace already gone is no error.
    """
    if not namespaces:
        return
    _kill_namespace_processes(namespaces)
    _ip_batch(None, [f'netns del {name}' for name in namespaces],
              check=False)


def remove_stale(prefix: str = PREFIX) -> list[str]:
    """Delete the namespaces of testbeds whose creating process is gone.

    For what a killed test run left behind; a running testbed (its
    creator alive) is left alone.

    :returns: the namespaces removed
    """
    stale = [name for name in list_namespaces()
             if (pid := creator_pid(name, prefix)) is not None
             and not _alive(pid)]
    delete_namespaces(stale)
    return stale


# What the machine can do.

def _capabilities() -> int:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('CapEff:'):
                return int(line.split()[1], 16)
    return 0


@functools.cache
def _probe() -> tuple[str | None, str | None]:
    """(why namespaces cannot be built, why netem cannot be used)."""
    caps = _capabilities()
    missing = [name for bit, name in ((12, 'CAP_NET_ADMIN'),
                                      (21, 'CAP_SYS_ADMIN'))
               if not caps >> bit & 1]
    if missing:
        return (f'network namespace tests need root ({" and ".join(missing)}'
                f' missing): run them as root, e.g. sudo -E, or in a '
                f'privileged container'), None
    for tool, package in (('ip', 'iproute2'), ('tc', 'iproute2')):
        if shutil.which(tool) is None:
            return (f'{tool} is not on PATH: install {package}'), None
    probe = namespace_name(new_token(), 'probe')
    try:
        _run(['ip', 'netns', 'add', probe])
    except TestbedError as exc:
        return (f'cannot create a network namespace ({exc}); a container '
                f'needs --privileged or CAP_SYS_ADMIN'), None
    try:
        _ip_batch(probe, ['link set lo up',
                          'link add name pa type veth peer name pb',
                          'link add name pbr type bridge',
                          'link set pb master pbr'])
        _ip_batch(probe, impairment_commands('pa', loss_percent=1,
                                             with_netem=False), tool='tc')
        with entered(probe):
            pass
        netem = _ip_batch(probe, impairment_commands('pb', delay_ms=1),
                          tool='tc', check=False)
    except (TestbedError, OSError) as exc:
        return (f'cannot build veth pairs, bridges or tc filters in a '
                f'network namespace ({exc}); the kernel needs veth, '
                f'bridge, clsact and cls_bpf'), None
    finally:
        delete_namespaces([probe])
    if netem.returncode:
        return None, (f'the kernel has no netem qdisc '
                      f'({(netem.stderr or netem.stdout).strip()}): '
                      f'{NETEM_ADVICE}')
    return None, None


def capability_problem() -> str | None:
    """Why this machine cannot build a testbed, with what to do.

    None if it can: namespaces, veth pairs, bridges, link faults and loss
    all work. Delay needs netem as well (:func:`netem_problem`).
    """
    return _probe()[0]


def netem_problem() -> str | None:
    """Why :meth:`Node.netem` cannot delay here; None if netem works."""
    problem, netem = _probe()
    return problem or netem


# The testbed.

class Node:
    """A machine of a :class:`Testbed`: a namespace on some planes.

    Made by :meth:`Testbed.add_node`, not directly.
    """

    def __init__(self, testbed: Testbed, name: str, index: int,
                 planes: tuple[str, ...]) -> None:
        self.testbed = testbed
        self.name = name
        #: Its position in the testbed (the last octet is 10 + index).
        self.index = index
        self.planes = planes
        #: The network namespace it runs in (``ip netns`` name).
        self.namespace = namespace_name(testbed.token, name,
                                        testbed.prefix)
        self.processes: list[subprocess.Popen] = []
        self._down: set[str] = set()
        self._cut_off = False
        self._impaired: set[str] = set()
        # port -> the plane it follows (None: only cut_off cuts it).
        self._forwards: dict[int, str | None] = {}
        self._forward_cut: set[int] = set()

    def __repr__(self) -> str:
        return f'<Node {self.name} in {self.namespace}>'

    def _plane_index(self, plane: str) -> int:
        if plane not in self.planes:
            raise ValueError(f'node {self.name} is not on plane {plane!r};'
                             f' its planes are {", ".join(self.planes)}')
        return self.testbed.planes.index(plane)

    def address(self, plane: str) -> str:
        """Its IPv4 address on ``plane`` (a /24 of 198.18.0.0/15)."""
        return node_address(self._plane_index(plane), self.index)

    def interface(self, plane: str) -> str:
        """Its interface on ``plane``, inside its namespace."""
        self._plane_index(plane)
        return plane

    def switch_port(self, plane: str) -> str:
        """The other end of its ``plane`` veth, in the switch namespace."""
        return switch_port_name(self._plane_index(plane), self.index)

    # Faults.

    def link_down(self, plane: str) -> float:
        """Set its ``plane`` interface down, as Doctor fails a host.

        :returns: ``time.time()`` taken just before the command, the fault
            instant T00; since the link goes down a few milliseconds of
            process start later, a latency measured from it is slightly
            overstated
        """
        device = self.interface(plane)
        t00 = time.time()
        _ip_batch(self.namespace, [f'link set dev {device} down'],
                  fault=True)
        self._down.add(plane)
        self._sync_forwards()
        return t00

    def link_up(self, plane: str) -> None:
        """Set its ``plane`` interface up again."""
        device = self.interface(plane)
        _ip_batch(self.namespace, [f'link set dev {device} up'],
                  fault=True)
        self._down.discard(plane)
        self._sync_forwards()

    def cut_off(self) -> float:
        """Set every link down and cut its loopback forwards.

        The "namespace cut off" fault: nothing it sends reaches any plane
        or the root loopback services until :meth:`restore`.

        :returns: the fault instant, as :meth:`link_down`
        """
        t00 = time.time()
        _ip_batch(self.namespace, [f'link set dev {plane} down'
                                   for plane in self.planes], fault=True)
        self._down.update(self.planes)
        self._cut_off = True
        self._sync_forwards()
        return t00

    def restore(self) -> None:
        """Undo :meth:`cut_off` and :meth:`link_down`: every link up.

        Impairments of :meth:`netem` stay; :meth:`clear_netem` ends them.
        """
        _ip_batch(self.namespace, [f'link set dev {plane} up'
                                   for plane in self.planes], fault=True)
        self._down.clear()
        self._cut_off = False
        self._sync_forwards()

    def netem(self, plane: str, loss_percent: float | None = None,
              delay_ms: float | None = None,
              jitter_ms: float | None = None) -> None:
        """Lose and/or delay its packets on ``plane``, in both directions.

        A qdisc shapes only what leaves an interface, so both ends of the
        node's veth pair are impaired: its own interface (what it sends)
        and the switch's port (what is sent to it). Each direction loses
        ``loss_percent`` % and is delayed by ``delay_ms`` (± ``jitter_ms``)
        on its own, so a round trip sees about twice the delay and
        1 - (1 - loss)² loss. Calling it again replaces the impairment.

        :raises TestbedError: for a delay where the kernel has no netem
        """
        self._plane_index(plane)
        with_netem = netem_problem() is None
        if delay_ms and not with_netem:
            raise TestbedError(f'cannot delay {self.name} on {plane}: '
                               f'{netem_problem()}')
        if plane in self._impaired:
            self.clear_netem(plane)
        for namespace, device in self._ends(plane):
            _ip_batch(namespace, impairment_commands(
                device, loss_percent, delay_ms, jitter_ms, with_netem),
                tool='tc')
        self._impaired.add(plane)

    def clear_netem(self, plane: str) -> None:
        """End what :meth:`netem` did on ``plane``."""
        self._plane_index(plane)
        with_netem = netem_problem() is None
        for namespace, device in self._ends(plane):
            _ip_batch(namespace, clear_commands(device, with_netem),
                      tool='tc', check=False)
        self._impaired.discard(plane)

    def _ends(self, plane: str) -> list[tuple[str, str]]:
        return [(self.namespace, self.interface(plane)),
                (self.testbed.switch_namespace, self.switch_port(plane))]

    # Processes and sockets inside.

    def popen(self, argv: typing.Sequence[str], **kwargs: typing.Any
              ) -> subprocess.Popen:
        """Start ``argv`` inside the namespace (``ip netns exec``).

        ``kwargs`` go to :class:`subprocess.Popen`. The process is
        stopped (SIGTERM, then SIGKILL) when the testbed closes.
        """
        proc = subprocess.Popen(
            ['ip', 'netns', 'exec', self.namespace, *argv], **kwargs)
        self.processes.append(proc)
        return proc

    def run(self, argv: typing.Sequence[str], timeout: float = 30.0,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a short command inside the namespace; its output as text.

        :raises TestbedError: if it fails (and ``check``) or outlasts
            ``timeout`` seconds
        """
        command = ['ip', 'netns', 'exec', self.namespace, *argv]
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TestbedError(f'{" ".join(argv)} in {self.name} did not '
                               f'end within {timeout:g} s') from exc
        if check and done.returncode:
            raise TestbedError(
                f'{" ".join(argv)} in {self.name} failed with status '
                f'{done.returncode}: {done.stderr.strip()}')
        return done

    def socket(self, family: int = socket.AF_INET,
               kind: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket of this namespace, for use in this process.

        It binds, connects and routes as a process of the node would, so a
        test or a benchmark can be a node without a process of its own.
        """
        with entered(self.namespace):
            return socket.socket(family, kind)

    def forward_loopback(self, port: int, plane: str | None = None
                         ) -> None:
        """Make ``127.0.0.1:port`` here reach ``127.0.0.1:port`` of the root.

        A relay listens on the node's loopback (which no link fault
        takes down) and connects to the root namespace's, so the node
        reaches RabbitMQ (5672), Redis (6379), PostgreSQL (5432) or a
        test server without the root namespace having any address of
        ours. Its connections are cut (bytes held, as by a partition)
        while the node is :meth:`cut_off`, and, when ``plane`` is given,
        while that plane's link is down: the service is then reached
        "over" that plane, as the bus is over the management network.

        :raises TestbedError: if the port is taken in the namespace
        """
        if plane is not None:
            self._plane_index(plane)
        if port in self._forwards:
            raise TestbedError(f'{self.name} already forwards port {port}')
        self.testbed._relay_process().call(
            'forward', key=self._forward_key(port),
            namespace=os.path.join(NETNS_DIR, self.namespace), port=port)
        self._forwards[port] = plane
        self._sync_forwards()

    def _forward_key(self, port: int) -> str:
        return f'{self.name}:{port}'

    def _sync_forwards(self) -> None:
        """Cut or restore each forward as the node's links now are."""
        for port, plane in self._forwards.items():
            cut = self._cut_off or (plane is not None and plane in self._down)
            if cut == (port in self._forward_cut):
                continue
            self.testbed._relay_process().call(
                'cut' if cut else 'restore', key=self._forward_key(port))
            if cut:
                self._forward_cut.add(port)
            else:
                self._forward_cut.discard(port)

    def _stop_processes(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            childproc.stop_process(proc, STOP_TIMEOUT)
        self.processes.clear()


class _RelayProcess:
    """The testbed's :mod:`~doctor_plugin.testing.nsrelay` process.

    Requests and replies are JSON lines on its stdin and stdout; it exits
    when its stdin closes, so it never outlives the testbed's process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'doctor_plugin.testing.nsrelay'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            bufsize=1)

    def call(self, op: str, **args: typing.Any) -> dict[str, typing.Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            try:
                self.proc.stdin.write(json.dumps({'op': op, **args}) + '\n')
                self.proc.stdin.flush()
            except OSError as exc:
                raise TestbedError(f'the loopback relay is gone ({exc})'
                                   ) from exc
            ready = select.select([self.proc.stdout], [], [],
                                  COMMAND_TIMEOUT)[0]
            line = self.proc.stdout.readline() if ready else ''
        if not line:
            raise TestbedError(
                f'the loopback relay did not answer {op!r} (status '
                f'{self.proc.poll()}); see its error output')
        reply = json.loads(line)
        if 'error' in reply:
            raise TestbedError(f'the loopback relay could not {op}: '
                               f'{reply["error"]}')
        return reply

    def stop(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            childproc.stop_process(self.proc, STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Testbed:
    """Namespaces joined by one bridge per plane; see the module's help.

    :param planes: the networks, in address order (plane ``i`` is
        198.18.i.0/24); each names the nodes' interface on it
    :param prefix: how its namespaces' names start
    """

    def __init__(self, planes: typing.Sequence[str] = ('management',
                                                       'tenant'),
                 prefix: str = PREFIX) -> None:
        if isinstance(planes, str):
            raise TypeError('planes is a sequence of names, not one name')
        self.planes = tuple(check_plane_name(plane) for plane in planes)
        if not self.planes or len(set(self.planes)) != len(self.planes):
            raise ValueError(f'give one or more distinct planes, not '
                             f'{planes!r}')
        if len(self.planes) > MAX_PLANES:
            raise ValueError(f'a testbed has at most {MAX_PLANES} planes')
        self.prefix = prefix
        self.token = new_token()
        #: The namespace of the bridges, one per plane.
        self.switch_namespace = namespace_name(self.token, 'switch', prefix)
        self.nodes: dict[str, Node] = {}
        self._namespaces: list[str] = []
        self._relay: _RelayProcess | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f'<Testbed {self.prefix}{self.token} planes={self.planes}>'

    def start(self) -> Testbed:
        """Create the switch namespace with one bridge per plane.

        :raises TestbedError: if iproute2 refuses (see
            :func:`capability_problem`); what was made is removed
        """
        try:
            self._add_namespace(self.switch_namespace)
            lines = ['link set lo up']
            for index in range(len(self.planes)):
                bridge = bridge_name(index)
                lines += [f'link add name {bridge} type bridge',
                          f'link set dev {bridge} up']
            _ip_batch(self.switch_namespace, lines)
        except BaseException:
            self.close()
            raise
        return self

    def add_node(self, name: str, planes: typing.Sequence[str] | None = None
                 ) -> Node:
        """Add a machine on ``planes`` (default: all) and return it.

        :raises ValueError: for a bad or taken name or an unknown plane
        :raises TestbedError: if iproute2 refuses
        """
        check_node_name(name)
        chosen = self.planes if planes is None else tuple(planes)
        if isinstance(planes, str):
            raise TypeError('planes is a sequence of names, not one name')
        unknown = [plane for plane in chosen if plane not in self.planes]
        if unknown or not chosen:
            raise ValueError(f'unknown planes {unknown or chosen!r}; this '
                             f'testbed has {", ".join(self.planes)}')
        with self._lock:
            if name in self.nodes:
                raise ValueError(f'the testbed already has a node {name!r}')
            if len(self.nodes) >= MAX_NODES:
                raise ValueError(f'a testbed has at most {MAX_NODES} nodes')
            node = Node(self, name, len(self.nodes),
                        tuple(plane for plane in self.planes
                              if plane in chosen))
            self.nodes[name] = node
        self._add_namespace(node.namespace)
        switch_lines: list[str] = []
        node_lines = ['link set lo up']
        for plane in node.planes:
            index = self.planes.index(plane)
            port = node.switch_port(plane)
            switch_lines += [
                f'link add name {port} type veth peer name {plane} '
                f'netns {node.namespace}',
                f'link set dev {port} master {bridge_name(index)}',
                f'link set dev {port} up']
            node_lines += [f'addr add {node.address(plane)}/24 dev {plane}',
                           f'link set dev {plane} up']
        _ip_batch(self.switch_namespace, switch_lines)
        _ip_batch(node.namespace, node_lines)
        return node

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        return self.nodes[name]

    def _add_namespace(self, namespace: str) -> None:
        # Recorded first, so that close() removes even a half-made one.
        self._namespaces.append(namespace)
        _run(['ip', 'netns', 'add', namespace])

    def _relay_process(self) -> _RelayProcess:
        with self._lock:
            if self._relay is None:
                self._relay = _RelayProcess()
            return self._relay

    def close(self) -> None:
        """Stop every process started in it and delete its namespaces."""
        for node in self.nodes.values():
            node._stop_processes()
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        namespaces, self._namespaces = self._namespaces, []
        delete_namespaces(namespaces)
        self.nodes.clear()

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(self, *exc: typing.Any) -> None:
        self.close()


def main(argv: typing.Sequence[str] | None = None) -> int:
    """``python -m doctor_plugin.testing.netns [prefix]``: remove leftovers."""
    args = list(sys.argv[1:] if argv is None else argv)
    prefix = args[0] if args else PREFIX
    for name in remove_stale(prefix):
        print(f'deleted {name}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
