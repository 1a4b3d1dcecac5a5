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

"""What an authenticated caller may do with the inspector API: oslo.policy.

The defaults let only monitors (role ``doctor_monitor``) and admins report
events: a false host-down report makes the cloud fence a healthy host. An
operator overrides them in the file ``[oslo_policy] policy_file`` names
(``policy.yaml``); ``oslopolicy-sample-generator --namespace
doctor_plugin`` writes the defaults out.
"""

from __future__ import annotations

from oslo_config import cfg
from oslo_policy import policy

#: Reporting events: Doctor's, Alertmanager's, collectd's, libvirt's.
REPORT_EVENTS = 'doctor:events:report'
#: Reporting events in Ceilometer's format (the ``doctor://`` publisher).
REPORT_CEILOMETER_EVENTS = 'doctor:events:report_ceilometer'

RULES = [
    policy.RuleDefault(
        name='context_is_admin',
        check_str='role:admin',
        description='Who is an administrator of the inspector.'),
    policy.RuleDefault(
        name='monitor',
        check_str='rule:context_is_admin or role:doctor_monitor',
        description='Who is a fault monitor: may report that a host or '
                    'an instance failed.'),
    policy.DocumentedRuleDefault(
        name=REPORT_EVENTS,
        check_str='rule:monitor',
        description='Report host faults and instance events to the '
                    'inspector, which publishes them, notifies the '
                    'tenants and (with [inspector] controller = nova) '
                    'forces the host down in Nova.',
        operations=[
            {'path': '/events', 'method': 'PUT'},
            {'path': '/events/alertmanager', 'method': 'POST'},
            {'path': '/events/collectd', 'method': 'POST'},
            {'path': '/events/libvirt', 'method': 'POST'},
        ]),
    policy.DocumentedRuleDefault(
        name=REPORT_CEILOMETER_EVENTS,
        check_str='rule:monitor or role:service',
        description="Report events in Ceilometer's format, as Ceilometer's "
                    "doctor:// event publisher does (with a service "
                    "user's token).",
        operations=[{'path': '/events/ceilometer', 'method': 'PUT'}]),
]


def list_rules() -> list[policy.RuleDefault]:
    """Our policy defaults: the ``oslo.policy.policies`` entry point."""
    return RULES


def rule_for(path: str) -> str:
    """The rule that guards the API path ``path`` (REPORT_EVENTS if none)."""
    for rule in RULES:
        if isinstance(rule, policy.DocumentedRuleDefault) and any(
                op['path'] == path for op in rule.operations):
            return rule.name
    return REPORT_EVENTS


def make_enforcer(conf: cfg.ConfigOpts) -> policy.Enforcer:
    """An enforcer over our defaults and ``[oslo_policy]``'s policy file."""
    enforcer = policy.Enforcer(conf)
    enforcer.register_defaults(list_rules())
    return enforcer


def get_enforcer() -> policy.Enforcer:
    """The ``oslo.policy.enforcer`` entry point, for oslopolicy's tools."""
    cfg.CONF([], project='doctor_plugin')
    return make_enforcer(cfg.CONF)
