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

"""The Nova stand-in's versioned notifications.

With ``NovaStandIn.enable_notifications`` the stand-in sends what Nova
sends on the bus when its state changes: ``service.update``
(``ServiceStatusPayload``) and ``instance.*`` (``InstanceUpdatePayload``,
``InstanceCreatePayload``, ``InstanceActionPayload``), in Nova's versioned
format. The payload builders are public so that a test can send one by
hand or compare with what a transformer reads.
"""

from __future__ import annotations

import time
import uuid

from oslo_config import cfg
import oslo_messaging

from doctor_plugin.common import messaging
from doctor_plugin.testing.nova import model


class NovaNotifications(model.NovaModel):
    """What ``NovaStandIn`` sends on the bus (a part of it)."""

    _notifier: oslo_messaging.Notifier | None

    # -- notifications -----------------------------------------------------

    def enable_notifications(self, transport_url: str,
                             topic: str = 'versioned_notifications'
                             ) -> None:
        """Send Nova's model.versioned notifications on ``transport_url``.

        From then on forcing a service down (or up, enabling, disabling)
        sends ``service.update`` and resetting a server's state sends
        ``instance.update``, from the thread that made the change.
        """
        transport = messaging.get_transport(cfg.ConfigOpts(), transport_url)
        notifier = oslo_messaging.Notifier(
            transport, publisher_id='nova-compute', driver='messagingv2',
            topics=[topic])
        with self._lock:
            self._notifier = notifier

    def _require_notifier(self) -> oslo_messaging.Notifier:
        notifier = self._notifier
        if notifier is None:
            raise RuntimeError('notifications are off: call '
                               'enable_notifications() first')
        return notifier

    def _notify_service(self, host: str, binary: str) -> None:
        if self._notifier is not None:
            self.emit_service_update(host, binary)

    def service_update_payload(self, host: str,
                               binary: str = model.COMPUTE_BINARY) -> dict:
        """The ``ServiceStatusPayload`` 1.1 of a service, as Nova sends it."""
        with self._lock:
            record = self._services.get((host, binary))
            if record is None:
                raise KeyError(f'no {binary} service on host {host!r}')
            # A service that is not forced down keeps reporting in.
            last_seen_up = time.time()
            return model.versioned('ServiceStatusPayload', '1.1', {
                'host': record['host'],
                'binary': record['binary'],
                'topic': record['topic'],
                'report_count': record['report_count'],
                'disabled': record['disabled'],
                'disabled_reason': record['disabled_reason'],
                'availability_zone': record['zone'],
                'last_seen_up': model.api_time(last_seen_up),
                'forced_down': record['forced_down'],
                'version': record['version'],
                'uuid': record['uuid'],
            })

    def emit_service_update(self, host: str,
                            binary: str = model.COMPUTE_BINARY) -> None:
        """Send ``service.update`` with the service's current state."""
        notifier = self._require_notifier()
        payload = self.service_update_payload(host, binary)
        notifier.prepare(publisher_id=f'{binary}:{host}').info(
            {}, 'service.update', payload)

    def instance_payload(self, server_id: str,
                         event_type: str = 'instance.update') -> dict:
        """The model.versioned payload Nova sends with ``event_type``.

        ``instance.update`` carries an ``InstanceUpdatePayload`` (with the
        last state change in ``state_update``), ``instance.create.*`` an
        ``InstanceCreatePayload`` and every other ``instance.*`` an
        ``InstanceActionPayload``. ``instance.delete.end`` shows the
        server deleted.
        """
        with self._lock:
            record = dict(self._get_server(server_id))
        deleted = event_type == 'instance.delete.end'
        state = 'deleted' if deleted else record['vm_state']
        power_state = 0 if deleted else record['power_state']
        gone_at = model.api_time(time.time()) if deleted else None
        data = {
            'uuid': record['id'],
            'user_id': record['user_id'],
            'tenant_id': record['project_id'],
            'reservation_id': 'r-' + record['id'][:8],
            'display_name': record['name'],
            'display_description': record['name'],
            'host_name': record['name'],
            'host': record['host'],
            'node': record['host'],
            'os_type': None,
            'architecture': 'x86_64',
            'availability_zone': 'nova',
            'flavor': model.versioned('FlavorPayload', '1.4', {
                'flavorid': 'standin', 'name': 'standin', 'memory_mb': 512,
                'vcpus': 1, 'root_gb': 1, 'ephemeral_gb': 0, 'swap': 0,
                'rxtx_factor': 1.0, 'vcpu_weight': 0, 'disabled': False,
                'is_public': True, 'extra_specs': {}, 'projects': None,
                'description': None}),
            'image_uuid': '155d900f-4e14-4e4c-a73d-069cbf4541e6',
            'key_name': None,
            'kernel_id': '',
            'ramdisk_id': '',
            'created_at': model.api_time(record['created']),
            'launched_at': model.api_time(record['created']),
            'terminated_at': gone_at,
            'deleted_at': gone_at,
            'updated_at': model.api_time(record['updated']),
            'state': state,
            'power_state': model.POWER_STATES.get(power_state, 'pending'),
            'task_state': None if deleted else record['task_state'],
            'progress': 0,
            'ip_addresses': [],
            'block_devices': [],
            'metadata': {},
            'locked': False,
            'auto_disk_config': 'MANUAL',
            'request_id': f'req-{uuid.uuid4()}',
            'action_initiator_user': record['user_id'],
            'action_initiator_project': record['project_id'],
        }
        if event_type == 'instance.update':
            data.update(
                state_update=model.versioned(
                    'InstanceStateUpdatePayload', '1.0', {
                        'old_state': record['old_vm_state'],
                        'state': record['vm_state'],
                        'old_task_state': record.get('old_task_state'),
                        'new_task_state': record['task_state']}),
                audit_period=model.versioned('AuditPeriodPayload', '1.0', {
                    'audit_period_beginning': model.api_time(
                        record['created'] - record['created'] % 86400),
                    'audit_period_ending': model.api_time(time.time())}),
                bandwidth=[], old_display_name=None, tags=[])
            return model.versioned('InstanceUpdatePayload', '1.8', data)
        data['fault'] = None
        if event_type.startswith('instance.create.'):
            data.update(keypairs=[], tags=[],
                        trusted_image_certificates=None,
                        instance_name=f'instance-{record["id"][:8]}')
            return model.versioned('InstanceCreatePayload', '1.11', data)
        return model.versioned('InstanceActionPayload', '1.7', data)

    def emit_instance_update(self, server_id: str,
                             event_type: str = 'instance.update') -> None:
        """Send an ``instance.*`` notification about a server.

        The publisher is the nova-compute of the server's host; an
        ``*.error`` event goes out at priority error, the rest at info.
        """
        notifier = self._require_notifier()
        payload = self.instance_payload(server_id, event_type)
        host = payload['nova_object.data']['host']
        prepared = notifier.prepare(publisher_id=f'nova-compute:{host}')
        if event_type.endswith('.error'):
            prepared.error({}, event_type, payload)
        else:
            prepared.info({}, event_type, payload)
