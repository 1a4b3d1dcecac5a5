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

"""Alarm definitions files for tests that run the inspector whole."""

import os

import yaml


def write_tenant_alarms(directory: str, receiver_url: str,
                        vm: str, vm_project: str,
                        tenants: tuple[str, ...] = ('tenant-a', 'tenant-b')
                        ) -> str:
    """A host-down alarm per tenant, and Doctor's per-VM alarm for ``vm``.

    Each alarm posts to ``receiver_url``/<tenant>, the VM's to
    ``receiver_url``/<vm>.

    :returns: the file's path
    """
    path = os.path.join(directory, 'alarms.yaml')
    with open(path, 'w') as f:
        yaml.safe_dump({'alarms': [
            {'name': f'host-down-{t}', 'project_id': t,
             'event_rule': {'event_type': 'compute.host.down'},
             'alarm_actions': [f'{receiver_url}/{t}']}
            for t in tenants] + [
            {'name': f'{vm}-error', 'project_id': vm_project,
             'event_rule': {'event_type': 'compute.instance.update',
                            'query': [{'field': 'traits.instance_id',
                                       'value': vm},
                                      {'field': 'traits.state',
                                       'value': 'error'}]},
             'alarm_actions': [f'{receiver_url}/{vm}']}]}, f)
    return path
