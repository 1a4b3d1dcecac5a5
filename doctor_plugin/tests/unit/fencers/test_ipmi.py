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

"""Tests of the ipmi fencer against the BMC stand-in, over loopback UDP.

The stand-in is a real IPMI 2.0 server (RMCP+, pyghmi's), in a process
of its own; each test starts one and takes well under a second.
"""

import collections
import concurrent.futures
import time

import fixtures
from pyghmi.ipmi.private import session as pyghmi_session

from doctor_plugin import fencers
from doctor_plugin.fencers import ipmi
from doctor_plugin.testing import bmc as bmc_mod
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.fencers import fixtures as bmc_fixtures

HOST = 'compute-1'
TIMEOUT = 5.0


class IPMITestCase(base.TestCase):

    hosts = (HOST,)

    def setUp(self):
        super().setUp()
        self.logger = self.useFixture(fixtures.FakeLogger(
            name='doctor_plugin.fencers.ipmi'))
        self.bmc = self.useFixture(bmc_fixtures.BmcFixture(self.hosts))
        self.bmc.add_entries(self.extra_entries())
        self.set_opts('fencing', driver='ipmi', bmc_file=self.bmc.path)
        self.fencer = fencers.load(self.conf)
        self.addCleanup(self.fencer.close)

    def extra_entries(self):
        return {}


class TestFence(IPMITestCase):

    def test_powers_a_running_host_off(self):
        self.assertIsInstance(self.fencer, ipmi.IPMIFencer)
        before = time.time()
        result = self.fencer.fence(HOST, TIMEOUT)
        self.assertEqual(('fenced', ''), (result.outcome, result.error))
        (request,) = self.bmc.requests(HOST)
        self.assertEqual(('off', 0), (request.action, request.code))
        (change,) = self.bmc.changes(HOST)
        self.assertEqual('off', change.state)
        self.assertLessEqual(before, result.started)
        self.assertLessEqual(result.started, request.at)
        self.assertLessEqual(change.at, result.finished)
        self.assertEqual('off', self.fencer.power_state(HOST, TIMEOUT))

    def test_a_host_already_off_is_left_alone(self):
        self.bmc.control(HOST, power='off')
        result = self.fencer.fence(HOST, TIMEOUT)
        self.assertEqual('already_off', result.outcome)
        self.assertEqual([], self.bmc.requests(HOST))

    def test_waits_until_the_host_is_off(self):
        self.bmc.control(HOST, power_off_delay=0.3)
        result = self.fencer.fence(HOST, TIMEOUT)
        self.assertEqual('fenced', result.outcome)
        (request,) = self.bmc.requests(HOST)
        (change,) = self.bmc.changes(HOST)
        self.assertAlmostEqual(request.at + 0.3, change.at, places=3)
        self.assertLessEqual(change.at, result.finished)

    def test_a_power_off_that_never_completes_times_out(self):
        self.bmc.control(HOST, power_off_delay=60)
        result = self.fencer.fence(HOST, 0.5)
        self.assertEqual('timed_out', result.outcome)
        self.assertIn('accepted the power off but the host is still on',
                      result.error)
        self.assertLess(result.duration_ms, 1500)

    def test_a_refused_power_off_fails_with_the_bmc_reason(self):
        self.bmc.control(HOST, refuse_power_off=bmc_mod.REFUSED)
        result = self.fencer.fence(HOST, TIMEOUT)
        self.assertEqual('failed', result.outcome)
        self.assertIn('refused: Command not supported in present state',
                      result.error)
        self.assertIn(f'port {self.bmc.ports[HOST]}', result.error)
        self.assertEqual('on', self.fencer.power_state(HOST, TIMEOUT))

    def test_a_silent_bmc_times_out_within_the_timeout(self):
        self.bmc.control(HOST, silent=True)
        result = self.fencer.fence(HOST, 1.0)
        self.assertEqual('timed_out', result.outcome)
        self.assertIn('no answer within 1 s', result.error)
        self.assertLess(result.duration_ms, 1500)
        self.assertEqual('unknown', self.fencer.power_state(HOST, 0.5))
        self.assertEqual([], self.bmc.requests(HOST))

    def test_several_hosts_at_once(self):
        # One more BMC stand-in process with three BMCs on three ports.
        hosts = ['c-a', 'c-b', 'c-c']
        more = self.useFixture(bmc_fixtures.BmcFixture(hosts))
        self.set_opts('fencing', bmc_file=more.path)
        fencer = fencers.load(self.conf)
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda h: fencer.fence(h, TIMEOUT),
                                    hosts))
        self.assertEqual(['fenced'] * 3, [r.outcome for r in results])
        self.assertEqual(3, len(set(more.ports.values())))
        for host in hosts:
            self.assertEqual(['off'], [c.state for c in more.changes(host)])

    def test_answers_are_prompt(self):
        durations = []
        for _ in range(20):
            start = time.monotonic()
            self.assertEqual('on', self.fencer.power_state(HOST, TIMEOUT))
            durations.append(time.monotonic() - start)
        self.assertLess(sorted(durations)[10], 0.1)


class _QueuedSession:
    """What pyghmi's I/O thread queues a received packet on."""

    def __init__(self, sockaddr):
        self.pktqueue = collections.deque([(b'reply', sockaddr)])


class TestWaitRace(base.TestCase):
    """pyghmi's wait for a reply that is queued already.

    A synchronous pyghmi call sends its request, then waits to be told of
    a packet from the BMC; when the reply came first it waits for its
    retry timer (0.5 to 1 s) instead: on loopback, one call in a few
    dozen.
    """

    def test_a_queued_reply_ends_the_wait_at_once(self):
        ipmi._close_wait_race()
        pyghmi_session.Session._assignsocket()  # starts pyghmi's I/O
        sockaddr = ('::ffff:127.0.0.1', 9, 0, 0)
        queued = _QueuedSession(sockaddr)
        pyghmi_session.sessionqueue.append(queued)
        self.addCleanup(self._unqueue, queued)
        start = time.monotonic()
        pyghmi_session._io_wait(2.0, sockaddr)
        self.assertLess(time.monotonic() - start, 0.5)

    def test_other_waits_are_left_alone(self):
        ipmi._close_wait_race()
        pyghmi_session.Session._assignsocket()
        sockaddr = ('::ffff:127.0.0.1', 9, 0, 0)
        queued = _QueuedSession(('::ffff:127.0.0.1', 10, 0, 0))
        pyghmi_session.sessionqueue.append(queued)
        self.addCleanup(self._unqueue, queued)
        start = time.monotonic()
        pyghmi_session._io_wait(0.3, sockaddr)
        self.assertGreaterEqual(time.monotonic() - start, 0.25)

    @staticmethod
    def _unqueue(queued):
        try:
            pyghmi_session.sessionqueue.remove(queued)
        except ValueError:
            pass


class TestCredentials(IPMITestCase):

    def extra_entries(self):
        return {'wrong-password': self.bmc.entry(HOST, password='nope'),
                'wrong-user': self.bmc.entry(HOST, username='nobody')}

    def test_a_wrong_password_fails_clearly(self):
        result = self.fencer.fence('wrong-password', TIMEOUT)
        self.assertEqual('failed', result.outcome)
        self.assertIn("refused the login of user 'fencer': Incorrect "
                      "password provided", result.error)
        self.assertIn(self.bmc.path, result.error)
        self.assertNotIn('nope', result.error)
        self.assertEqual([], self.bmc.requests(HOST))
        # The broken session is not handed to the next login.
        self.assertEqual('fenced', self.fencer.fence(HOST, TIMEOUT).outcome)

    def test_an_unknown_user_fails_clearly(self):
        result = self.fencer.fence('wrong-user', TIMEOUT)
        self.assertEqual('failed', result.outcome)
        self.assertIn("user 'nobody'", result.error)
        self.assertIn('Unauthorized name', result.error)

    def test_a_host_without_a_bmc(self):
        result = self.fencer.fence('compute-9', TIMEOUT)
        self.assertEqual('failed', result.outcome)
        self.assertIn(f'host compute-9 has no entry in {self.bmc.path}',
                      result.error)
        self.assertEqual('unknown', self.fencer.power_state('compute-9',
                                                            TIMEOUT))
        self.assertIn('compute-9', self.logger.output)

    def test_power_state_logs_why_it_is_unknown(self):
        self.assertEqual('unknown',
                         self.fencer.power_state('wrong-password', TIMEOUT))
        self.assertIn('Incorrect password provided', self.logger.output)
        self.assertNotIn('nope', self.logger.output)
