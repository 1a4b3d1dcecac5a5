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

"""Real Aodh in this process: its event listener and alarm notifier.

For the interop tests and for B6, which compare our evaluation with
Aodh's own on the same bus: released aodh (``pip install aodh``, as ``tox
-e interop`` does) with its SQLite storage, its event alarm evaluator
listening for Ceilometer-format events and its notifier running alarm
actions, as aodh-listener and aodh-notifier do. Both are cotyledon
services whose listeners start in their constructors, so no service
manager (nor eventlet) is needed.
"""

from __future__ import annotations

import atexit
import datetime
import os
import shutil
import tempfile
import typing
import uuid

from doctor_plugin import exceptions
from doctor_plugin.testing import broker


#: The process's Aodh database: Aodh's storage layer configures one
#: database engine per process (oslo.db's enginefacade), so every
#: AodhInProcess of a process shares it.
_DATABASE_DIR: str | None = None
#: Read at import: test fixtures point tempfile at per-test directories,
#: which would vanish under the process's database.
_TMP = tempfile.gettempdir()


def _database_dir() -> str:
    global _DATABASE_DIR
    if _DATABASE_DIR is None:
        _DATABASE_DIR = tempfile.mkdtemp(prefix='doctor-aodh-', dir=_TMP)
        atexit.register(shutil.rmtree, _DATABASE_DIR, True)
    return _DATABASE_DIR


class AodhInProcess:
    """An Aodh with SQLite storage (one database per process).

    Each instance has topics of its own (``event_topic`` for events,
    ``notifier_topic`` for alarm actions) so that runs sharing a broker
    never see each other's messages; :meth:`stop` deletes their queues.

    :raises DoctorPluginError: if aodh is not installed
    """

    def __init__(self, transport_url: str,
                 event_topic: str | None = None) -> None:
        try:
            from aodh import service as aodh_service
            from aodh import storage
        except ImportError as exc:
            raise exceptions.DoctorPluginError(
                f'real Aodh is needed here but cannot be imported ({exc}); '
                f'install it with pip install "doctor-plugin[bench]" (or '
                f'"pip install \'aodh>=23,<24\'", or run "tox -e '
                f'interop")') from None
        self.transport_url = transport_url
        run = uuid.uuid4().hex[:12]
        self.event_topic = event_topic or f'alarm.aodh-{run}'
        self.notifier_topic = f'alarming.aodh-{run}'
        workdir = _database_dir()
        path = os.path.join(workdir, f'aodh-{run}.conf')
        # transport_url is registered by oslo.messaging lazily: it must come
        # from a file, not an override.
        with open(path, 'w') as f:
            f.write(f'[DEFAULT]\n'
                    f'transport_url = {transport_url}\n'
                    f'notifier_topic = {self.notifier_topic}\n'
                    f'[database]\n'
                    f'connection = sqlite:///{workdir}/aodh.db\n'
                    f'[listener]\n'
                    f'event_alarm_topic = {self.event_topic}\n')
        self.conf = aodh_service.prepare_service(argv=[],
                                                 config_files=[path])
        self.conf.set_override('record_history', False)
        self.storage = storage.get_connection_from_config(self.conf)
        self.storage.upgrade()
        self._services: list[typing.Any] = []

    def add_event_alarm(self, name: str, project_id: str,
                        event_type: str, query: list[dict],
                        alarm_actions: list[str],
                        repeat_actions: bool = False) -> str:
        """Create an event alarm as Aodh's API stores it; its id."""
        from aodh.storage import models

        now = datetime.datetime.now(datetime.timezone.utc).replace(
            tzinfo=None)
        alarm_id = str(uuid.uuid4())
        self.storage.create_alarm(models.Alarm(
            alarm_id=alarm_id, type='event', enabled=True, name=name,
            description='', timestamp=now, user_id='doctor-bench',
            project_id=project_id, state='insufficient data',
            state_timestamp=now, state_reason='', ok_actions=[],
            alarm_actions=alarm_actions, insufficient_data_actions=[],
            repeat_actions=repeat_actions,
            rule={'event_type': event_type, 'query': query},
            time_constraints=[], severity='critical'))
        return alarm_id

    def alarm_state(self, alarm_id: str) -> str:
        (alarm,) = self.storage.get_alarms(alarm_id=alarm_id)
        return alarm.state

    def start(self) -> AodhInProcess:
        """Start aodh-listener's and aodh-notifier's services."""
        from aodh import event as aodh_event
        from aodh import notifier as aodh_notifier

        self._services = [aodh_event.EventAlarmEvaluationService(0,
                                                                 self.conf),
                          aodh_notifier.AlarmNotifierService(0, self.conf)]
        return self

    def send_alarm(self, alarm_id: str, current: str, reason: str,
                   reason_data: dict) -> None:
        """Have aodh-notifier run the actions of a transition.

        As Aodh's evaluators do: over the bus, on ``notifier_topic``.
        """
        from aodh import queue

        (alarm,) = self.storage.get_alarms(alarm_id=alarm_id)
        previous = alarm.state
        alarm.state = current
        queue.AlarmNotifier(self.conf).notify(alarm, previous, reason,
                                              reason_data)

    def stop(self) -> None:
        for svc in self._services:
            svc.terminate()
        self._services = []
        broker.delete_queues(
            self.transport_url,
            broker.listener_queue_names([self.event_topic,
                                         self.notifier_topic]))
