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

import uuid

from doctor_plugin.common import messaging
from doctor_plugin.testing import services
from doctor_plugin.tests import base

TRANSPORT_URL = services.TRANSPORT_URL


class FunctionalTestCase(base.TestCase):
    """A test that needs the message broker."""

    def setUp(self) -> None:
        super().setUp()
        self.require(services.problem('RabbitMQ'))
        self.addCleanup(messaging.cleanup)
        self.run_id = uuid.uuid4().hex[:12]
