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

"""BMC stand-ins and the BMC files that point at them, for tests."""

import os

import fixtures
import yaml

from doctor_plugin.testing import bmc as bmc_mod

USER, PASSWORD = 'fencer', 's3cret-pw'


class BmcFixture(fixtures.Fixture):
    """``hosts`` BMCs in a process of their own, and a BMC file for them.

    ``self.ports[host]`` is each host's BMC port; ``self.path`` the BMC
    file; ``extra`` entries are added to the file as they are.
    """

    def __init__(self, hosts=('compute-1',), extra=None, **kwargs):
        super().__init__()
        self.hosts = list(hosts)
        self.extra = extra or {}
        self.kwargs = kwargs

    def _setUp(self):
        self.bmcs = bmc_mod.BmcProcess([0] * len(self.hosts), USER,
                                       PASSWORD, **self.kwargs)
        self.bmcs.start()
        self.addCleanup(self.bmcs.stop)
        self.ports = dict(zip(self.hosts, self.bmcs.ports))
        tmp = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(tmp, 'bmc.yaml')
        self.entries = {host: self.entry(host) for host in self.hosts}
        self.add_entries(self.extra)

    def add_entries(self, entries):
        """Add hosts to the BMC file (e.g. ``entry(host, password=...)``)."""
        self.entries.update(entries)
        write_bmc_file(self.path, self.entries)

    def entry(self, host, **changes):
        entry = {'address': '127.0.0.1', 'port': self.ports[host],
                 'username': USER, 'password': PASSWORD}
        entry.update(changes)
        return entry

    def control(self, host=None, **knobs):
        if host is not None:
            knobs['port'] = self.ports[host]
        self.bmcs.control(**knobs)

    def requests(self, host):
        return self.bmcs.requests(self.ports[host])

    def changes(self, host):
        return self.bmcs.changes(self.ports[host])


def write_bmc_file(path, hosts):
    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump({'hosts': hosts}, f)
