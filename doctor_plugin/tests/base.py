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

"""Base classes for doctor_plugin's tests."""

import os

import fixtures
from oslotest import base

from doctor_plugin.common import profiler
from doctor_plugin.testing import config
from doctor_plugin.testing import poll
from doctor_plugin.testing import services


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    return services.free_port()


wait_until = poll.wait_until


class TestCase(base.BaseTestCase):
    """A test with its own configuration object and profiler timeline.

    ``self.conf`` has every option registered, as a service's has
    (:class:`doctor_plugin.testing.config.ConfFixture`).
    """

    def setUp(self) -> None:
        super().setUp()
        self.conf = self.useFixture(config.ConfFixture()).conf
        # Each test its own delivery database (and nothing in /var/lib).
        self.state_path = self.useFixture(fixtures.TempDir()).path
        self.use_private_state()

    def use_private_state(self) -> None:
        """Point ``[DEFAULT] state_path`` at this test's directory again.

        Parsing the configuration again (``self.conf([...])``) drops the
        overrides; a test that does so calls this after it.
        """
        self.set_opts(state_path=self.state_path)
        self.timeline = profiler.Timeline()

    def require(self, problem: str | None) -> None:
        """Skip for want of a local service, but fail under CI.

        :param problem: why the service cannot be used, or None if it can
        """
        if problem:
            if os.environ.get('CI', '').lower() in ('true', '1', 'yes'):
                self.fail(problem)
            self.skipTest(problem)

    def set_opts(self, group: str | None = None, **overrides) -> None:
        """Override registered options for the length of the test."""
        for name, value in overrides.items():
            self.conf.set_override(name, value, group=group)
            self.addCleanup(self.conf.clear_override, name, group=group)
