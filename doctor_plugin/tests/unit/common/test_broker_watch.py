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

"""BrokerWatch: a broker that goes away and comes back is noticed."""

import socket
import threading
import time

from doctor_plugin.common import messaging
from doctor_plugin.tests import base


def listen(port=0):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', port))
    sock.listen(16)
    return sock


class TestBrokerWatch(base.TestCase):

    def wait(self, predicate, timeout=5.0):
        end = time.monotonic() + timeout
        while not predicate() and time.monotonic() < end:
            time.sleep(0.01)
        return predicate()

    def test_return_after_an_outage_calls_back_once(self):
        broker = listen()
        port = broker.getsockname()[1]
        returned = threading.Event()
        calls = []
        watch = messaging.BrokerWatch(
            f'rabbit://guest:guest@127.0.0.1:{port}/',
            lambda: (calls.append(1), returned.set()), 0.02).start()
        self.addCleanup(watch.stop)
        time.sleep(0.1)
        self.assertEqual([], calls)  # up all along: nothing to resync

        broker.close()
        self.assertTrue(self.wait(lambda: watch.outages == 1))
        self.assertEqual([], calls)
        broker = listen(port)
        self.addCleanup(broker.close)
        self.assertTrue(returned.wait(5))
        time.sleep(0.1)
        self.assertEqual([1], calls)
        self.assertEqual(1, watch.outages)

    def test_no_broker_to_watch_on_other_transports(self):
        watch = messaging.BrokerWatch('fake://', lambda: None, 0.02).start()
        self.addCleanup(watch.stop)
        self.assertIsNone(watch._thread)
        off = messaging.BrokerWatch('rabbit://127.0.0.1:1/', lambda: None,
                                    0).start()
        self.assertIsNone(off._thread)
