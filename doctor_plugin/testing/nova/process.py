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

"""The Nova stand-in as a process: ``python -m doctor_plugin.testing.nova``.

:class:`NovaStandInProcess` runs :func:`main` in a child process (through
:mod:`doctor_plugin.testing.childproc`), as Nova runs on other machines
than the inspector, and :func:`main` serves a stand-in filled from a
servers file until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import typing

from doctor_plugin.common import messaging
from doctor_plugin.testing import childproc
from doctor_plugin.testing.nova import standin


class NovaStandInProcess:
    """A :class:`~doctor_plugin.testing.nova.standin.NovaStandIn` of its own.

    Nova runs on other machines than the inspector; the benchmark runs its
    stand-in this way so that answering the controller's calls does not
    compete with the chain under test for the GIL. It is set up once, from
    ``servers``, and is then only reached over HTTP.

    :param servers: ``(id, project_id, host, name)`` of every server
    :param idle: run it on the CPU nothing else wants (see
        :class:`doctor_plugin.testing.childproc.ChildServer`)
    """

    def __init__(self, servers: typing.Iterable[tuple[str, str, str, str]],
                 max_version: str = '2.96', idle: bool = False) -> None:
        self._servers = [list(server) for server in servers]
        self._idle = idle
        self._max_version = max_version
        self._dir: tempfile.TemporaryDirectory | None = None
        self._child: childproc.ChildServer | None = None
        self.url = ''
        self.compute_url = ''

    def start(self) -> NovaStandInProcess:
        self._dir = tempfile.TemporaryDirectory(prefix='doctor-nova-')
        path = os.path.join(self._dir.name, 'servers.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self._servers, f)
        self._child = childproc.ChildServer(
            'doctor_plugin.testing.nova',
            ['--servers-file', path, '--max-version', self._max_version],
            what='the Nova stand-in process', idle=self._idle)
        try:
            ready = self._child.start()
        except BaseException:
            self.stop()
            raise
        self.url, self.compute_url = ready['url'], ready['compute_url']
        return self

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._child = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def _load_servers(path: str) -> list[tuple[str, str, str, str]]:
    """Servers from a JSON list of objects or of 4-item lists."""
    with open(path, encoding='utf-8') as f:
        entries = json.load(f)
    servers = []
    for entry in entries:
        if isinstance(entry, dict):
            servers.append((entry['id'], entry['project_id'], entry['host'],
                            entry.get('name', '')))
        else:
            server_id, project_id, host, name = entry
            servers.append((server_id, project_id, host, name))
    return servers


def main(argv: list[str] | None = None) -> None:
    """Serve a Nova stand-in until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog='python -m doctor_plugin.testing.nova',
        description='A local stand-in for Nova\'s compute API.')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0,
                        help='port to listen on (0: a free one)')
    parser.add_argument('--servers-file',
                        help='JSON list of servers: objects with id, '
                             'project_id, host, name, or [id, project_id, '
                             'host, name] lists')
    parser.add_argument('--token', help='require this X-Auth-Token')
    parser.add_argument('--max-version', default='2.96')
    parser.add_argument('--transport-url',
                        help='send versioned notifications on this '
                             'oslo.messaging transport')
    args = parser.parse_args(argv)

    nova = standin.NovaStandIn(max_version=args.max_version,
                               token=args.token, host=args.host,
                               port=args.port)
    if args.servers_file:
        nova.add_servers(_load_servers(args.servers_file))
    if args.transport_url:
        nova.enable_notifications(args.transport_url)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    nova.start()
    sys.stdout.write(json.dumps({'url': nova.url,
                                 'compute_url': nova.compute_url}) + '\n')
    sys.stdout.flush()
    try:
        while not done.wait(1):
            pass
    finally:
        nova.stop()
        messaging.cleanup()
