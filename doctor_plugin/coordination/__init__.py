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

"""Active/active services: membership, host ownership and takeover.

Several inspectors (and listeners) of a region join a tooz group. A hash
ring over the members gives each host exactly one owner, which alone
correlates its reports, fixes Nova up and emits the per-VM events; a
report that reaches another member is handed to the owner. When a member
leaves or dies, its hosts move to the survivors at the next look at the
group, and one survivor takes its pending deliveries over in the shared
database.

Without ``[coordination] backend_url`` a process owns every host, as a
single inspector always did.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = 'coordination'

OPTS = [
    cfg.StrOpt('backend_url',
               secret=True,
               help='The tooz coordination backend that the members of '
                    'this region join, e.g. redis://127.0.0.1:6379, '
                    'etcd3+http://controller:2379 or '
                    'zookeeper://controller:2181. Empty: this process '
                    'works alone and owns every host, which suits one '
                    'inspector (and the demo). Every member must also '
                    'share [delivery] connection (a database server, not '
                    'SQLite) so that a survivor can take over the '
                    "deliveries of a member that died."),
    cfg.StrOpt('group',
               default='doctor-plugin',
               help='Prefix of the tooz groups; the inspectors join '
                    '"<group>.inspector", the listeners '
                    '"<group>.listener". Regions that share a backend '
                    'need distinct prefixes (on Redis it is also the '
                    'namespace of their keys).'),
    cfg.FloatOpt('heartbeat_interval',
                 default=0.25, min=0.05,
                 help='Seconds between heartbeats to the backend. Each '
                      'one also reads the group, so this is how soon a '
                      'member sees another join or leave once the backend '
                      'knows.'),
    cfg.FloatOpt('member_timeout',
                 default=2.0, min=0.5,
                 help='Seconds without a heartbeat after which the backend '
                      'drops a member, and the survivors take its hosts '
                      'and deliveries. Lower fails over faster; too low '
                      'drops a member that only stalled (a long garbage '
                      'collection, a slow backend). Keep it several '
                      'heartbeat_interval.'),
    cfg.FloatOpt('lease_margin',
                 default=0.5, min=0.0,
                 help='A member stops acting on hosts this many seconds '
                      'before the backend would drop it, counted from its '
                      'last heartbeat that succeeded. It covers clock rate '
                      'differences and work already under way, so that a '
                      'member cut off from the backend has stopped before '
                      'another takes its hosts. Must be less than '
                      'member_timeout.'),
    cfg.FloatOpt('backend_timeout',
                 default=0.5, min=0.05,
                 help='Seconds to wait for one answer of the backend '
                      '(its socket timeout). A backend that does not '
                      'answer costs at most this per heartbeat.'),
    cfg.StrOpt('member_secret',
               secret=True,
               help='Key that signs what a member hands to another (a '
                    'report for a host the other owns). The same on every '
                    'member; at least 16 characters, e.g. the output of '
                    '"openssl rand -hex 32". Required with backend_url.'),
    cfg.FloatOpt('forward_timeout',
                 default=2.0, min=0.1,
                 help='Seconds a member waits for the owner of a host to '
                      'answer a report it handed over. When the owner '
                      'does not answer, the member waits for the group to '
                      'change and hands the report to the new owner, for '
                      'up to member_timeout plus this.'),
    cfg.StrOpt('advertise_url',
               help='Base URL at which the other members reach this '
                    "inspector's API, e.g. http://controller1:12345. "
                    'Empty: made from [inspector] host and port, with the '
                    'host name of this machine when the API listens on '
                    'every address.'),
]
