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

"""Members on tooz's file driver: a real backend in a temporary folder.

The file driver keeps groups and capabilities as files and needs no
server, so unit tests run real :class:`Membership` objects with it. It
does not expire members; expiry on Redis is covered by the functional
tests (``tests/functional/test_cluster.py``).
"""

import fixtures
from oslo_config import cfg

from doctor_plugin import coordination
from doctor_plugin.coordination import membership as membership_mod
from doctor_plugin.tests import base

SECRET = 'a-member-secret-of-32-characters'


class CoordinationTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.backend = f'file://{self.useFixture(fixtures.TempDir()).path}'
        self.set_opts(group='coordination', backend_url=self.backend,
                      member_secret=SECRET, heartbeat_interval=0.05,
                      member_timeout=2.0, lease_margin=0.5,
                      forward_timeout=0.5)

    def member_conf(self, **overrides):
        """A configuration of its own, as another member process has."""
        conf = cfg.ConfigOpts()
        conf.register_opts(coordination.OPTS, group=coordination.GROUP)
        conf([])
        values = {name: getattr(self.conf.coordination, name)
                  for name in ('backend_url', 'member_secret',
                               'heartbeat_interval', 'member_timeout',
                               'lease_margin', 'forward_timeout')}
        values.update(overrides)
        for name, value in values.items():
            conf.set_override(name, value, coordination.GROUP)
        return conf

    def join(self, member_id, url='', group='g', **kwargs):
        membership = membership_mod.Membership(
            self.member_conf(), group,
            membership_mod.Member(member_id, url), **kwargs).start()
        self.addCleanup(membership.stop)
        return membership

    def wait_members(self, membership, count, timeout=5.0):
        self.assertTrue(base.wait_until(
            lambda: len(membership.view.members) == count, timeout),
            f'{membership.member_id} sees {sorted(membership.view.members)}'
            f', not {count} members')
