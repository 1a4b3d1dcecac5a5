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

"""The relay between a testbed node's loopback and the root namespace's.

Run by :meth:`doctor_plugin.testing.netns.Node.forward_loopback` as
``python -m doctor_plugin.testing.nsrelay``, one process per testbed, so
that relaying a node's bus and database traffic does not take the GIL
of the test or the benchmark.

A socket stays in the network namespace it was created in, whatever the
thread that uses it later. So for each forwarded port the process
enters the node's namespace (setns(2)) just long enough to create and
bind the listening socket on the node's 127.0.0.1, and comes back: the
:class:`~doctor_plugin.testing.tcpproxy.TcpProxy` that relays it, and
its thread, connect upstream in the root namespace. One hop, no address
in the root namespace, no socat.

It reads one JSON request a line on stdin and answers each with one
JSON line on stdout (``{"ok": true}`` or ``{"error": "..."}``):

``{"op": "forward", "key": K, "namespace": PATH, "port": P}``
    relay ``127.0.0.1:P`` of the namespace at ``PATH`` to root's
``{"op": "cut", "key": K}`` / ``{"op": "restore", "key": K}``
    hold (blackhole) the relay's connections, or let them flow again

It stops every relay and exits when its stdin closes, which is also
what happens when the process that started it dies.
"""

from __future__ import annotations

import json
import socket
import sys
import typing

from doctor_plugin.testing import netns
from doctor_plugin.testing import tcpproxy

_BACKLOG = 1024


def listen_in(namespace: str, port: int) -> socket.socket:
    """A socket listening on ``127.0.0.1:port`` of ``namespace``."""
    with netns.entered(namespace):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(('127.0.0.1', port))
        listener.listen(_BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


class Relays:
    """The relays of one testbed, by key."""

    def __init__(self) -> None:
        self.proxies: dict[str, tcpproxy.TcpProxy] = {}

    def handle(self, request: dict[str, typing.Any]) -> dict[str, typing.Any]:
        op = request.get('op')
        key = str(request.get('key'))
        if op == 'forward':
            if key in self.proxies:
                return {'error': f'{key} is already forwarded'}
            port = int(request['port'])
            try:
                listener = listen_in(request['namespace'], port)
            except OSError as exc:
                return {'error': f'cannot listen on 127.0.0.1:{port} in '
                                 f'{request["namespace"]}: {exc}'}
            self.proxies[key] = tcpproxy.TcpProxy(
                '127.0.0.1', port, listener=listener).start()
        elif op in ('cut', 'restore'):
            proxy = self.proxies.get(key)
            if proxy is None:
                return {'error': f'nothing is forwarded as {key}'}
            if op == 'cut':
                proxy.cut('blackhole')
            else:
                proxy.restore()
        else:
            return {'error': f'unknown op {op!r}'}
        return {'ok': True}

    def stop(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
        self.proxies.clear()


def main() -> int:
    relays = Relays()
    try:
        for line in sys.stdin:
            try:
                reply = relays.handle(json.loads(line))
            except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                reply = {'error': f'bad request {line.strip()!r}: {exc}'}
            sys.stdout.write(json.dumps(reply) + '\n')
            sys.stdout.flush()
    finally:
        relays.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
