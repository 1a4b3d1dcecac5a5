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

"""Tests for the pure parts of doctor_plugin.testing.netns.

The address plan, the names and the tc commands; the namespaces
themselves are built in doctor_plugin/tests/functional/test_netns.py.
"""

import ipaddress

from doctor_plugin.testing import netns
from doctor_plugin.testing import nsrelay
from doctor_plugin.tests import base


class TestAddressPlan(base.TestCase):

    def test_plane_and_node_addresses(self):
        self.assertEqual('198.18.0.10', netns.node_address(0, 0))
        self.assertEqual('198.18.2.13', netns.node_address(2, 3))
        self.assertEqual('198.18.1.254', netns.node_address(1, 244))
        self.assertEqual(ipaddress.ip_network('198.18.5.0/24'),
                         netns.plane_subnet(5))

    def test_every_address_is_in_the_benchmarking_range(self):
        network = ipaddress.ip_network('198.18.0.0/15')
        for plane in (0, 255, 256, netns.MAX_PLANES - 1):
            subnet = netns.plane_subnet(plane)
            self.assertTrue(subnet.subnet_of(network), subnet)
            for node in (0, netns.MAX_NODES - 1):
                address = ipaddress.ip_address(netns.node_address(plane,
                                                                  node))
                self.assertIn(address, subnet)
                self.assertNotIn(address, (subnet.network_address,
                                           subnet.broadcast_address))
        self.assertEqual('198.19.0.10', netns.node_address(256, 0))

    def test_beyond_the_plan_is_refused(self):
        self.assertRaises(ValueError, netns.plane_subnet, netns.MAX_PLANES)
        self.assertRaises(ValueError, netns.plane_subnet, -1)
        self.assertRaises(ValueError, netns.node_address, 0,
                          netns.MAX_NODES)
        self.assertRaises(ValueError, netns.node_address, 0, -1)


class TestNames(base.TestCase):

    def test_interface_names_fit_ifnamsiz(self):
        longest = 'a' * netns.IFNAME_MAX
        self.assertEqual(longest, netns.check_plane_name(longest))
        for name in (netns.bridge_name(netns.MAX_PLANES - 1),
                     netns.switch_port_name(netns.MAX_PLANES - 1,
                                            netns.MAX_NODES - 1)):
            self.assertLessEqual(len(name), netns.IFNAME_MAX, name)

    def test_bad_plane_names(self):
        for name in ('', 'a' * 16, 'lo', 'Mgmt', '0net', 'a-b', 'a/b',
                     'a b', 'a:b'):
            self.assertRaises(ValueError, netns.check_plane_name, name)

    def test_bad_node_names(self):
        for name in ('', 'a' * 33, 'switch', 'probe', 'Host', '-a', 'a_b',
                     'a/b', 'a b'):
            self.assertRaises(ValueError, netns.check_node_name, name)
        self.assertEqual('compute-0', netns.check_node_name('compute-0'))

    def test_tokens_carry_the_pid_and_differ(self):
        self.assertEqual('42-ab1z', netns.new_token(42, 'ab1z'))
        tokens = {netns.new_token() for _ in range(50)}
        self.assertGreater(len(tokens), 45)
        name = netns.namespace_name(netns.new_token(1234), 'host-0')
        self.assertTrue(name.startswith('dp-1234-'), name)
        self.assertEqual(1234, netns.creator_pid(name))

    def test_creator_pid_of_other_namespaces(self):
        self.assertIsNone(netns.creator_pid('dp-probe1'))
        self.assertIsNone(netns.creator_pid('cni-1234-abcd-x'))
        self.assertIsNone(netns.creator_pid('dp-12-abc-x'))
        self.assertEqual(12, netns.creator_pid('dp-12-abcd-switch'))
        self.assertEqual(12, netns.creator_pid('xy-12-abcd-n', 'xy-'))

    def test_parse_netns_list(self):
        output = ('dp-1-abcd-host (id: 2)\n'
                  'dp-1-abcd-switch (id: 1)\n\nother\n')
        self.assertEqual(['dp-1-abcd-host', 'dp-1-abcd-switch', 'other'],
                         netns.parse_netns_list(output))


def _run_classic_bpf(bytecode, random_value):
    """What the loss filter returns for a packet, given ``ld rand``."""
    count, *lines = bytecode.split(',')
    program = [tuple(int(f) for f in line.split()) for line in lines]
    assert int(count) == len(program)
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == 0x20 and k == (-0x1000 + 56) & 0xffffffff:
            acc = random_value
            pc += 1
        elif code == 0x35:
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f'unexpected instruction {code:#x}')


class TestCommands(base.TestCase):

    def test_loss_filter_drops_the_given_fraction(self):
        drop, keep = 2, 0xffffffff
        bytecode = netns.loss_bytecode(30)
        threshold = round(0.3 * 2 ** 32)
        self.assertEqual(drop, _run_classic_bpf(bytecode, 0))
        self.assertEqual(drop, _run_classic_bpf(bytecode, threshold - 1))
        self.assertEqual(keep, _run_classic_bpf(bytecode, threshold))
        self.assertEqual(keep, _run_classic_bpf(bytecode, 2 ** 32 - 1))
        for value in (0, 2 ** 31, 2 ** 32 - 1):
            self.assertEqual(keep, _run_classic_bpf(netns.loss_bytecode(0),
                                                    value))
        self.assertEqual(drop, _run_classic_bpf(netns.loss_bytecode(100),
                                                2 ** 32 - 2))

    def test_netem_line(self):
        self.assertEqual(
            ['qdisc replace dev tenant root netem delay 20ms 5ms loss 30%'],
            netns.impairment_commands('tenant', 30, 20, 5))
        self.assertEqual(['qdisc replace dev p1n0 root netem loss 0.5%'],
                         netns.impairment_commands('p1n0', 0.5))
        self.assertEqual(['qdisc replace dev x root netem delay 1.5ms'],
                         netns.impairment_commands('x', delay_ms=1.5))
        self.assertEqual(['qdisc del dev x root'], netns.clear_commands('x'))

    def test_without_netem_loss_is_a_filter(self):
        lines = netns.impairment_commands('tenant', 30, with_netem=False)
        self.assertEqual('qdisc add dev tenant clsact', lines[0])
        self.assertEqual(
            'filter add dev tenant egress pref 1 bpf da bytecode '
            f'"{netns.loss_bytecode(30)}"', lines[1])
        self.assertEqual(['qdisc del dev tenant clsact'],
                         netns.clear_commands('tenant', with_netem=False))

    def test_without_netem_delay_is_refused_with_advice(self):
        exc = self.assertRaises(ValueError, netns.impairment_commands,
                                'tenant', 30, 10, with_netem=False)
        self.assertIn('CONFIG_NET_SCH_NETEM', str(exc))

    def test_bad_impairments(self):
        for args in ((101,), (-1,), (None, -5), (None, None, 3), (10, 0, 2),
                     ()):
            self.assertRaises(ValueError, netns.impairment_commands,
                              'tenant', *args)


class TestTestbedArguments(base.TestCase):
    """What a Testbed refuses before it runs any command."""

    def test_planes(self):
        self.assertRaises(TypeError, netns.Testbed, planes='management')
        self.assertRaises(ValueError, netns.Testbed, planes=())
        self.assertRaises(ValueError, netns.Testbed, planes=('a', 'a'))
        self.assertRaises(ValueError, netns.Testbed, planes=('Mgmt',))

    def test_names(self):
        testbed = netns.Testbed(planes=('management', 'tenant'))
        self.assertEqual(('management', 'tenant'), testbed.planes)
        self.assertTrue(testbed.switch_namespace.startswith('dp-'))
        self.assertTrue(testbed.switch_namespace.endswith('-switch'))
        self.assertEqual(testbed.token.split('-')[0],
                         str(netns.creator_pid(testbed.switch_namespace)))
        self.assertNotEqual(testbed.token, netns.Testbed().token)


class TestRelayRequests(base.TestCase):
    """The relay process's answers that need no namespace."""

    def test_errors_are_answers(self):
        relays = nsrelay.Relays()
        self.addCleanup(relays.stop)
        self.assertIn('unknown op', relays.handle({'op': 'jump'})['error'])
        self.assertIn('nothing is forwarded',
                      relays.handle({'op': 'cut', 'key': 'h:1'})['error'])
        self.assertIn('cannot listen', relays.handle(
            {'op': 'forward', 'key': 'h:1', 'port': 1,
             'namespace': '/nonexistent/netns'})['error'])
