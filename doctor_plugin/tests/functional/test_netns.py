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

"""The namespace testbed over real namespaces, veth pairs and bridges.

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2: skipped on a
developer's machine without them, failed under ``CI=true``.
"""

import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

from doctor_plugin.testing import netns
from doctor_plugin.testing import services
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.testing import test_tcpproxy

#: Bound on every wait of these tests, in seconds.
TIMEOUT = 10
SO_RCVBUFFORCE = getattr(socket, 'SO_RCVBUFFORCE', 33)

# Run inside a node: open CONNECTIONS connections at once to
# 127.0.0.1:<port>, echo ROUNDS messages on each, print what came back.
ECHO_CLIENT = textwrap.dedent('''
    import json, socket, sys
    port, connections, rounds = (int(a) for a in sys.argv[1:4])
    socks = [socket.create_connection(('127.0.0.1', port), 5)
             for _ in range(connections)]
    echoed = 0
    for r in range(rounds):
        for i, sock in enumerate(socks):
            sock.sendall(b'%d-%d;' % (i, r))
        for i, sock in enumerate(socks):
            want = b'%d-%d;' % (i, r)
            got = b''
            while len(got) < len(want):
                got += sock.recv(len(want) - len(got))
            echoed += got == want
    print(json.dumps({'echoed': echoed}))
''')

# Run inside a node: speak AMQP 0-9-1 to the broker through the relay.
AMQP_CLIENT = textwrap.dedent('''
    import json, sys
    import kombu
    with kombu.Connection(sys.argv[1], connect_timeout=5) as conn:
        conn.connect()
        channel = conn.channel()
        print(json.dumps({
            'connected': conn.connected,
            'product': conn.connection.server_properties.get('product')}))
        channel.close()
''')

# Run in a process of its own, then SIGKILLed: a test run that died.
KILLED_RUN = textwrap.dedent('''
    import json, sys, time
    from doctor_plugin.testing import netns
    testbed = netns.Testbed(planes=('management',)).start()
    node = testbed.add_node('host-0')
    sleeper = node.popen(['sleep', '600'])
    print(json.dumps({'namespaces': [testbed.switch_namespace,
                                     node.namespace],
                      'sleeper': sleeper.pid}), flush=True)
    time.sleep(600)
''')


class TestbedTestCase(base.TestCase):
    """A test with a two-plane testbed of two nodes, ``a`` and ``b``."""

    planes = ('management', 'tenant')

    def setUp(self):
        super().setUp()
        self.require(netns.capability_problem())
        self.testbed = netns.Testbed(planes=self.planes).start()
        self.addCleanup(self.testbed.close)
        self.a = self.testbed.add_node('a')
        self.b = self.testbed.add_node('b')

    def udp_socket(self, node, plane=None):
        sock = node.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        if plane is not None:
            sock.bind((node.address(plane), 0))
        return sock

    def round_trips(self, sender, receiver, plane, count=2, timeout=0.2):
        """How many of ``count`` UDP echoes on ``plane`` came back."""
        server = self.udp_socket(receiver, plane)
        server.settimeout(timeout)
        client = self.udp_socket(sender)
        client.settimeout(timeout)
        answered = 0
        for i in range(count):
            data = b'ping %d' % i
            try:
                # Unreachable (no route) while the sender's link is down.
                client.sendto(data, server.getsockname())
                got, peer = server.recvfrom(64)
                server.sendto(got, peer)
                answered += client.recvfrom(64)[0] == data
            except OSError:
                pass
        return answered

    def reachable(self, plane):
        """Whether ``a`` and ``b`` exchange datagrams on ``plane``.

        Both ways: from ``a`` (which tests break) and from ``b``.
        """
        there = self.round_trips(self.a, self.b, plane)
        back = self.round_trips(self.b, self.a, plane)
        if {there, back} not in ({0}, {2}):
            self.fail(f'{there} of 2 echoes from a, {back} of 2 from b')
        return there == 2

    def echo_server(self):
        server = test_tcpproxy._Server(('127.0.0.1', 0), test_tcpproxy._Echo)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server.server_address[1]

    def run_in(self, node, script, *args):
        """Run a Python ``script`` in ``node``; its JSON output line."""
        done = node.run([sys.executable, '-c', script, *map(str, args)],
                        timeout=TIMEOUT)
        return json.loads(done.stdout)


class TestPlanes(TestbedTestCase):

    def test_nodes_exchange_datagrams_on_each_plane(self):
        for plane in self.planes:
            self.assertEqual(2, self.round_trips(self.a, self.b, plane),
                             plane)
            self.assertEqual(2, self.round_trips(self.b, self.a, plane),
                             plane)

    def test_addresses_and_interfaces(self):
        self.assertEqual('198.18.0.10', self.a.address('management'))
        self.assertEqual('198.18.1.11', self.b.address('tenant'))
        shown = self.a.run(['ip', '-o', '-4', 'addr', 'show', 'dev',
                            self.a.interface('tenant')]).stdout
        self.assertIn('198.18.1.10/24', shown)
        lo = self.a.run(['ip', '-o', 'link', 'show', 'dev', 'lo']).stdout
        self.assertIn('UP', lo)

    def test_node_on_some_planes_only(self):
        c = self.testbed.add_node('c', planes=('tenant',))
        self.assertEqual('198.18.1.12', c.address('tenant'))
        self.assertRaises(ValueError, c.address, 'management')
        self.assertEqual(2, self.round_trips(c, self.a, 'tenant'))
        links = c.run(['ip', '-o', 'link', 'show']).stdout
        self.assertNotIn('management', links)

    def test_link_down_stops_that_plane_only(self):
        before = time.time()
        t00 = self.a.link_down('management')
        self.assertLessEqual(before, t00)
        self.assertLessEqual(t00, time.time())
        self.assertFalse(self.reachable('management'))
        self.assertTrue(self.reachable('tenant'))
        self.a.link_up('management')
        self.assertTrue(self.reachable('management'))

    def test_cut_off_isolates_the_node_on_every_plane(self):
        self.a.cut_off()
        for plane in self.planes:
            self.assertFalse(self.reachable(plane), plane)
        self.a.restore()
        for plane in self.planes:
            self.assertTrue(self.reachable(plane), plane)

    def test_the_root_namespace_gets_nothing(self):
        ours = netns.NETWORK
        with open('/proc/net/fib_trie') as trie:
            self.assertNotIn(str(ours.network_address)[:7], trie.read())
        links = subprocess.run(['ip', '-o', 'link', 'show'],
                               capture_output=True, text=True).stdout
        for name in (self.a.switch_port('management'),):
            self.assertNotIn(f' {name}:', links)


class TestLoss(TestbedTestCase):
    """``netem(loss_percent=30)`` loses 30 % of each direction."""

    #: Datagrams sent per direction. The received count is binomial:
    #: its rate has a standard deviation of sqrt(.3 * .7 / 2000) = 1.0
    #: points, so TOLERANCE (5 points, about 4.9 deviations) makes a
    #: false failure rarer than one in a million runs.
    SAMPLE = 2000
    TOLERANCE = 0.05

    def loss_rate(self, sender, receiver, plane):
        server = self.udp_socket(receiver, plane)
        # Room for the whole sample: SO_RCVBUFFORCE (root may exceed
        # rmem_max), which Python does not name.
        server.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 22)
        client = self.udp_socket(sender)
        for i in range(self.SAMPLE):
            client.sendto(b'%d' % i, server.getsockname())
            if i % 50 == 49:
                # Paced, so that no queue but the filter drops any.
                time.sleep(0.001)
        seen = set()
        server.settimeout(0.5)
        try:
            while True:
                seen.add(server.recvfrom(64)[0])
        except socket.timeout:
            pass
        return 1 - len(seen) / self.SAMPLE

    def test_loss_in_both_directions(self):
        # A first exchange, so that ARP is resolved before the loss.
        self.assertTrue(self.reachable('tenant'))
        self.a.netem('tenant', loss_percent=30)
        from_a = self.loss_rate(self.a, self.b, 'tenant')
        to_a = self.loss_rate(self.b, self.a, 'tenant')
        self.assertAlmostEqual(0.3, from_a, delta=self.TOLERANCE)
        self.assertAlmostEqual(0.3, to_a, delta=self.TOLERANCE)
        # The other plane is untouched, and clearing ends the loss.
        self.assertLess(self.loss_rate(self.a, self.b, 'management'), 0.01)
        self.a.clear_netem('tenant')
        self.assertLess(self.loss_rate(self.b, self.a, 'tenant'), 0.01)

    def test_delay_where_netem_exists(self):
        if netns.netem_problem() is not None:
            exc = self.assertRaises(netns.TestbedError, self.a.netem,
                                    'tenant', delay_ms=20)
            self.assertIn('netem', str(exc))
            return
        self.assertTrue(self.reachable('tenant'))
        self.a.netem('tenant', delay_ms=20)
        server = self.udp_socket(self.b, 'tenant')
        client = self.udp_socket(self.a)
        client.settimeout(TIMEOUT)
        server.settimeout(TIMEOUT)
        start = time.monotonic()
        client.sendto(b'x', server.getsockname())
        data, peer = server.recvfrom(8)
        server.sendto(data, peer)
        client.recvfrom(8)
        self.assertGreaterEqual(time.monotonic() - start, 0.040)


class TestForwardLoopback(TestbedTestCase):

    def test_a_process_inside_reaches_a_root_loopback_server(self):
        port = self.echo_server()
        self.a.forward_loopback(port)
        self.assertEqual({'echoed': 8 * 3},
                         self.run_in(self.a, ECHO_CLIENT, port, 8, 3))
        # Only the node that forwards has it.
        refused = self.b.run([sys.executable, '-c', ECHO_CLIENT,
                              str(port), '1', '1'], check=False)
        self.assertNotEqual(0, refused.returncode)
        self.assertIn('ConnectionRefusedError', refused.stderr)

    def test_it_survives_link_down_and_not_cut_off(self):
        port = self.echo_server()
        self.a.forward_loopback(port)
        conn = self.a.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(conn.close)
        conn.settimeout(0.5)
        conn.connect(('127.0.0.1', port))

        def echoes(data):
            conn.sendall(data)
            try:
                return conn.recv(64) == data
            except socket.timeout:
                return False

        for plane in self.planes:
            self.a.link_down(plane)
        self.assertTrue(echoes(b'links down'))
        self.a.cut_off()
        self.assertFalse(echoes(b'cut off'))
        self.a.restore()
        # What was held flows once the node is back.
        conn.settimeout(TIMEOUT)
        self.assertEqual(b'cut off', conn.recv(64))
        self.assertTrue(echoes(b'restored'))

    def test_a_forward_over_a_plane_follows_that_link(self):
        port = self.echo_server()
        self.a.forward_loopback(port, plane='management')
        conn = self.a.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(conn.close)
        conn.settimeout(0.5)
        conn.connect(('127.0.0.1', port))
        self.a.link_down('tenant')
        conn.sendall(b'1')
        self.assertEqual(b'1', conn.recv(8))
        self.a.link_down('management')
        conn.sendall(b'2')
        self.assertRaises(socket.timeout, conn.recv, 8)
        self.a.link_up('management')
        conn.settimeout(TIMEOUT)
        self.assertEqual(b'2', conn.recv(8))

    def test_a_process_inside_speaks_amqp_to_the_real_broker(self):
        self.require(services.problem('RabbitMQ'))
        host, port = services.address(services.TRANSPORT_URL, 5672)
        self.assertEqual('127.0.0.1', host)
        self.a.forward_loopback(port)
        url = services.TRANSPORT_URL.replace('rabbit://', 'amqp://', 1)
        got = self.run_in(self.a, AMQP_CLIENT, url)
        self.assertEqual({'connected': True, 'product': 'RabbitMQ'}, got)

    def test_a_port_is_forwarded_once(self):
        port = self.echo_server()
        self.a.forward_loopback(port)
        self.assertRaises(netns.TestbedError, self.a.forward_loopback, port)


class TestTeardown(base.TestCase):

    def setUp(self):
        super().setUp()
        self.require(netns.capability_problem())

    def test_close_removes_namespaces_and_processes(self):
        class Failure(Exception):
            pass

        try:
            with netns.Testbed(planes=('management',)) as testbed:
                node = testbed.add_node('host-0')
                sleeper = node.popen(['sleep', '600'])
                node.forward_loopback(services.free_port())
                relay = testbed._relay.proc
                names = [testbed.switch_namespace, node.namespace]
                self.assertLessEqual(set(names),
                                     set(netns.list_namespaces()))
                raise Failure()
        except Failure:
            pass
        self.assertFalse(set(names) & set(netns.list_namespaces()))
        self.assertIsNotNone(sleeper.poll())
        self.assertIsNotNone(relay.poll())

    def test_remove_stale_deletes_what_a_killed_run_left(self):
        run = subprocess.Popen([sys.executable, '-c', KILLED_RUN],
                               stdout=subprocess.PIPE, text=True)
        self.addCleanup(run.stdout.close)
        try:
            left = json.loads(run.stdout.readline())
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait(TIMEOUT)
        self.assertLessEqual(set(left['namespaces']),
                             set(netns.list_namespaces()))
        # A running testbed of this process is not stale.
        with netns.Testbed(planes=('management',)) as mine:
            removed = netns.remove_stale()
            self.assertIn(mine.switch_namespace, netns.list_namespaces())
        self.assertLessEqual(set(left['namespaces']), set(removed))
        self.assertFalse(set(left['namespaces'])
                         & set(netns.list_namespaces()))
        self.assertTrue(base.wait_until(
            lambda: not _running(left['sleeper']), timeout=TIMEOUT))


def _running(pid):
    try:
        with open(f'/proc/{pid}/stat') as stat:
            # A zombie (state Z) waits only for init to reap it.
            return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False
