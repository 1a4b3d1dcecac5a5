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

"""The outbox on a shared PostgreSQL database, the local one on loopback.

Inspectors that must survive the loss of their host keep their
deliveries in a database server; this runs the outbox against the real
PostgreSQL (127.0.0.1:5432, trust authentication, database ``test``).
When it is unreachable the tests skip on a developer's machine and fail
under CI, like the broker's.
"""

import uuid

import sqlalchemy as sa

from doctor_plugin import delivery
from doctor_plugin.delivery import store as store_mod
from doctor_plugin import event as event_model
from doctor_plugin import pipeline
from doctor_plugin.testing import consumer
from doctor_plugin.testing import services
from doctor_plugin.tests import base

DATABASE_URL = services.DATABASE_SERVER_URL


class TestSharedDatabase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.require(services.problem('PostgreSQL'))
        self.set_opts(group='notifier', webhook_max_retries=0)
        # A host of its own in the shared tables; its rows go at the end.
        self.owner = f'test-{uuid.uuid4().hex[:12]}'
        self.set_opts(group='delivery', connection=DATABASE_URL,
                      owner=self.owner, retry_initial_interval=0.05,
                      retry_max_interval=0.2, poll_interval=0.1)
        self.addCleanup(self.forget_rows)
        self.port = base.closed_port()

    def forget_rows(self):
        engine = sa.create_engine(DATABASE_URL)
        with engine.begin() as conn:
            conn.execute(store_mod.DELIVERIES.delete().where(
                store_mod.DELIVERIES.c.owner.like(f'{self.owner}:%')))
        engine.dispose()

    def publish(self, count):
        pipe = pipeline.Pipeline(
            self.conf, pipeline.PipelineDefinition.from_dict({
                'sources': [{'name': 's', 'events': ['*'], 'sinks': ['k']}],
                'sinks': [{'name': 'k', 'notifiers': [
                    f'http://127.0.0.1:{self.port}/alarm']}]}))
        events = [event_model.Event.create('compute.host.down',
                                           {'host': f'h-{i}'})
                  for i in range(count)]
        for ev in events:
            self.assertEqual({}, pipe.publish([ev]))
        return pipe, events

    def test_pending_deliveries_survive_in_postgresql(self):
        pipe, events = self.publish(5)
        store = pipe.outbox.store
        owner = pipe.outbox.owner
        self.assertEqual(5, len(store.find(store_mod.PENDING, owner)))
        pipe.close()

        # Another process of the same owner (a restart, or a standby
        # given the name) resumes them, in order.
        with consumer.ConsumerServer(port=self.port) as receiver:
            box = delivery.get_outbox(self.conf)
            self.addCleanup(delivery.release, box)
            got = receiver.wait_for(5, timeout=10)
            self.assertEqual([e.message_id for e in events],
                             [a.headers['X-Doctor-Event-Id'] for a in got])
            self.assertTrue(box.wait_empty(5))

    def test_retry_hands_deliveries_to_another_owner(self):
        pipe, events = self.publish(2)
        owner = pipe.outbox.owner
        pipe.close()
        self.set_opts(group='delivery', owner=f'{self.owner}-standby')
        box = delivery.get_outbox(self.conf)
        self.addCleanup(delivery.release, box)
        self.assertEqual(0, box.stats['resumed'])
        store = store_mod.DeliveryStore(DATABASE_URL)
        self.addCleanup(store.close)
        moved = store.retry(None, deadline=1e12, owner=box.owner,
                            from_owner=owner, status=store_mod.PENDING)
        self.assertEqual(2, moved)
        with consumer.ConsumerServer(port=self.port) as receiver:
            got = receiver.wait_for(2, timeout=10)
        self.assertEqual([e.message_id for e in events],
                         [a.headers['X-Doctor-Event-Id'] for a in got])
