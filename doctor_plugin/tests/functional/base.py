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

"""Functional tests run against the real RabbitMQ on loopback.

When the broker is unreachable the tests skip on a developer's machine and
fail under CI (``CI=true``), so that a broken environment is never
mistaken for a green run.
"""

import os
import socket
from urllib import parse as urlparse
import uuid

from doctor_plugin.common import messaging
from doctor_plugin.tests import base

TRANSPORT_URL = os.environ.get('DOCTOR_PLUGIN_TEST_TRANSPORT_URL',
                               'rabbit://guest:guest@127.0.0.1:5672/')


def broker_problem(url: str = TRANSPORT_URL) -> str | None:
    """Why the broker of ``url`` cannot be reached, or None if it can."""
    parts = urlparse.urlsplit(url)
    host, port = parts.hostname or '127.0.0.1', parts.port or 5672
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return (f'RabbitMQ is not reachable at {host}:{port} ({exc}); start '
                f'it with "rabbitmq-server -detached" or set '
                f'DOCTOR_PLUGIN_TEST_TRANSPORT_URL')


class FunctionalTestCase(base.TestCase):
    """A test that needs the message broker."""

    def setUp(self) -> None:
        super().setUp()
        self.require(broker_problem())
        self.addCleanup(messaging.cleanup)
        self.run_id = uuid.uuid4().hex[:12]
