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

"""Tests for doctor_plugin.testing.tcpproxy, over real loopback sockets."""

import socket
import socketserver
import threading

from doctor_plugin.testing import tcpproxy
from doctor_plugin.tests import base


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class TestTcpProxy(base.TestCase):

    def setUp(self):
        super().setUp()
        self.echo = _Server(('127.0.0.1', 0), _Echo)
        threading.Thread(target=self.echo.serve_forever, daemon=True).start()
        self.addCleanup(self.echo.server_close)
        self.addCleanup(self.echo.shutdown)
        self.proxy = tcpproxy.TcpProxy(
            '127.0.0.1', self.echo.server_address[1]).start()
        self.addCleanup(self.proxy.stop)

    def connect(self, timeout=2.0):
        sock = socket.create_connection(('127.0.0.1', self.proxy.port),
                                        timeout)
        self.addCleanup(sock.close)
        return sock

    def exchange(self, sock, data):
        sock.sendall(data)
        got = b''
        while len(got) < len(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got

    def test_relays_both_ways(self):
        sock = self.connect()
        self.assertEqual(b'ping', self.exchange(sock, b'ping'))

    def test_relays_more_than_a_socket_buffer(self):
        sock = self.connect(timeout=10)
        data = bytes(range(256)) * 16384   # 4 MiB
        reader = []
        thread = threading.Thread(
            target=lambda: reader.append(self._read(sock, len(data))))
        thread.start()
        sock.sendall(data)
        thread.join(20)
        self.assertEqual([data], reader)

    def _read(self, sock, size):
        got = bytearray()
        while len(got) < size:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return bytes(got)

    def test_blackhole_holds_bytes_until_restored(self):
        sock = self.connect(timeout=0.3)
        self.assertEqual(b'one', self.exchange(sock, b'one'))
        self.proxy.cut('blackhole')
        sock.sendall(b'two')
        self.assertRaises(TimeoutError, sock.recv, 10)
        self.proxy.restore()
        sock.settimeout(2)
        self.assertEqual(b'two', sock.recv(10))

    def test_blackhole_holds_new_connections(self):
        self.proxy.cut('blackhole')
        sock = self.connect(timeout=0.3)
        sock.sendall(b'held')
        self.assertRaises(TimeoutError, sock.recv, 10)
        self.assertEqual(1, self.proxy.connections)
        self.proxy.restore()
        sock.settimeout(2)
        self.assertEqual(b'held', sock.recv(10))

    def test_reset_cuts_open_connections(self):
        sock = self.connect()
        self.assertEqual(b'x', self.exchange(sock, b'x'))
        self.proxy.cut('reset')
        self.assertRaises(ConnectionResetError, sock.recv, 10)
        self.assertEqual(0, self.proxy.connections)

    def test_reset_refuses_new_connections_until_restored(self):
        self.proxy.cut('reset')
        # On loopback the reset may come before connect() returns.
        self.assertRaises((ConnectionResetError, BrokenPipeError),
                          lambda: self.exchange(self.connect(), b'x'))
        self.proxy.restore()
        self.assertEqual(b'back', self.exchange(self.connect(), b'back'))

    def test_a_dead_upstream_resets_the_client(self):
        self.echo.shutdown()
        self.echo.server_close()
        self.assertRaises((ConnectionResetError, BrokenPipeError),
                          lambda: self.exchange(self.connect(), b'x'))

    def test_client_close_closes_upstream(self):
        sock = self.connect()
        self.exchange(sock, b'x')
        self.assertEqual(1, self.proxy.connections)
        sock.shutdown(socket.SHUT_WR)
        self.assertEqual(b'', sock.recv(10))
        self.assertTrue(base.wait_until(
            lambda: self.proxy.connections == 0, 2))

    def test_an_unknown_mode_is_refused(self):
        err = self.assertRaises(ValueError, self.proxy.cut, 'drop')
        self.assertIn('blackhole, reset', str(err))

    def test_commands_need_a_running_proxy(self):
        proxy = tcpproxy.TcpProxy('127.0.0.1', 1)
        self.assertRaises(RuntimeError, proxy.cut)
        self.assertRaises(RuntimeError, lambda: proxy.port)

    def test_stop_closes_everything(self):
        sock = self.connect()
        self.exchange(sock, b'x')
        port = self.proxy.port
        self.proxy.stop()
        self.assertEqual(b'', sock.recv(10))
        self.assertRaises(ConnectionRefusedError, socket.create_connection,
                          ('127.0.0.1', port), 1)
