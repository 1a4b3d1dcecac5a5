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

"""Fencers: make sure a host declared down is really off.

A host that is alive but unreachable keeps running its VMs; were Nova
told to force it down, the VMs could be rebuilt elsewhere while the old
copies still run (split brain). So, before the controller forces a failed
host's compute service down, a fencer powers the host off (STONITH, "shoot
the other node in the head") and says whether it is off.

A fencer plugin lives in the ``doctor_plugin.fencers`` entry point
namespace; ``[fencing] driver`` names the one the controller uses. The
contract is :class:`~doctor_plugin.fencers.base.FencerBase`; the options of
the ``[fencing]`` group are declared here, those of a plugin in its module.
"""

from __future__ import annotations

from oslo_config import cfg

from doctor_plugin.common import plugins
from doctor_plugin import exceptions
from doctor_plugin.fencers import base

GROUP = 'fencing'
NAMESPACE = 'doctor_plugin.fencers'

#: ``[fencing] on_failure``: tell tenants, leave Nova alone.
SKIP_FIXUP = 'skip_fixup'
#: ``[fencing] on_failure``: keep fencing until it works, then fix up.
WAIT = 'wait'

OPTS = [
    cfg.StrOpt('driver',
               default='none',
               help='How a failed host is made sure to be off before Nova '
                    'is told to force its compute service down: the name '
                    'of an entry point in the doctor_plugin.fencers '
                    'namespace. "none" does not fence (the fence outcome '
                    'is recorded as "none"); "ipmi" powers the host off '
                    'through its BMC (IPMI 2.0 over LAN), with the '
                    'credentials of [fencing] bmc_file.'),
    cfg.FloatOpt('timeout',
                 default=10.0, min=0.1,
                 help='Seconds one fence attempt may take: reading the '
                      'power state, the power off and its confirmation. '
                      'Past it the attempt is "timed_out".'),
    cfg.StrOpt('on_failure',
               default=SKIP_FIXUP,
               choices=[(SKIP_FIXUP,
                         'give up at the first failed attempt: the host '
                         'is not forced down nor are its instances set to '
                         'error, and the controller result says so; an '
                         'operator decides (safe and prompt, but nothing '
                         'is evacuated automatically)'),
                        (WAIT,
                         'keep trying to fence, with backoff, until it '
                         'works, then force the host down and set its '
                         'instances to error; give up, as with '
                         'skip_fixup, at [nova] fixup_deadline or when '
                         'the host comes back (recovers by itself from '
                         'a BMC outage, but holds a fix-up thread while '
                         'it waits)')],
               help='What the controller does about Nova when a host '
                    'cannot be fenced. Tenants are told of the fault in '
                    'either case, before any fencing: this is only about '
                    'the force-down, which would let the instances be '
                    'evacuated while the host may still run them.'),
    cfg.StrOpt('bmc_file',
               help='YAML file of the BMC of each host, for the ipmi '
                    'driver: "hosts:" mapping each host (as Nova names '
                    'it) to its "address", "username", "password" and '
                    'optional "port" (623). Read and checked when the '
                    'driver loads. Keep it readable by the inspector '
                    'only: it holds the passwords.'),
]

FenceResult = base.FenceResult
FencerBase = base.FencerBase


def load(conf: cfg.ConfigOpts) -> base.FencerBase:
    """The fencer ``[fencing] driver`` names, constructed with ``conf``.

    :raises ConfigurationError: if it is not installed or cannot load,
        naming the entry point and the drivers there are, or if its own
        configuration (e.g. the BMC file) is invalid
    """
    name = conf.fencing.driver
    try:
        return plugins.load_driver(NAMESPACE, name, conf)
    except exceptions.PluginLoadError as exc:
        raise exceptions.ConfigurationError(
            '[fencing] driver', name,
            f'cannot load entry point {name!r} of namespace {NAMESPACE!r} '
            f'({exc}); choose one of '
            f'{", ".join(exc.available) or "(none installed)"}') from None
