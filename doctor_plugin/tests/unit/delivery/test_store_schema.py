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

"""The delivery tables are made once, however many processes open them.

Services that start together on one database all find the tables
missing; these tests open the store from several real processes at the
same moment, on fresh SQLite files, as an inspector and a listener do at
boot on one host's ``state_path``.
"""

import multiprocessing
import os
import sqlite3

import sqlalchemy as sa

from doctor_plugin.delivery import store as store_mod
from doctor_plugin import exceptions
from doctor_plugin.tests import base

#: Processes that race, and fresh databases they race on.
PROCESSES = 4
DATABASES = 8


def _open_each(urls, barrier, results):
    """In a child: open the store of each URL when all the others do."""
    for url in urls:
        barrier.wait(60)
        try:
            store_mod.DeliveryStore(url).close()
        except exceptions.ConfigurationError as exc:
            results.put((url, str(exc)))
        else:
            results.put((url, None))


class TestConcurrentOpen(base.TestCase):

    def test_processes_opening_one_fresh_database_at_once(self):
        urls = [f'sqlite:///{self.state_path}/race-{i}.sqlite'
                for i in range(DATABASES)]
        # spawn, not fork: the children start as a service does, with
        # none of this process's threads or connections.
        ctx = multiprocessing.get_context('spawn')
        barrier = ctx.Barrier(PROCESSES)
        results = ctx.Queue()
        procs = [ctx.Process(target=_open_each,
                             args=(urls, barrier, results))
                 for _ in range(PROCESSES)]
        for proc in procs:
            proc.start()
        try:
            got = [results.get(timeout=120)
                   for _ in range(PROCESSES * DATABASES)]
        finally:
            for proc in procs:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
        failures = [f'{url}: {error}' for url, error in got if error]
        self.assertEqual([], failures)
        self.assertEqual([0] * PROCESSES, [p.exitcode for p in procs])
        for url in urls:
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                self.assertEqual([], store_mod.missing_schema(conn))
            engine.dispose()


class TestSchema(base.TestCase):

    def url(self, name='deliveries.sqlite'):
        return f'sqlite:///{os.path.join(self.state_path, name)}'

    def test_a_missing_index_is_made(self):
        store_mod.DeliveryStore(self.url()).close()
        with sqlite3.connect(os.path.join(self.state_path,
                                          'deliveries.sqlite')) as db:
            db.execute('DROP INDEX doctor_deliveries_owner_status')
        engine = sa.create_engine(self.url())
        with engine.connect() as conn:
            self.assertEqual(['doctor_deliveries_owner_status'],
                             store_mod.missing_schema(conn))
        store_mod.DeliveryStore(self.url()).close()
        with engine.connect() as conn:
            self.assertEqual([], store_mod.missing_schema(conn))
        engine.dispose()

    def test_an_unopenable_database_says_what_to_check(self):
        path = os.path.join(self.state_path, 'not-a-database.sqlite')
        with open(path, 'w') as f:
            f.write('this is not a database, but an operator\'s notes\n' * 50)
        exc = self.assertRaises(exceptions.ConfigurationError,
                                store_mod.DeliveryStore, f'sqlite:///{path}')
        message = str(exc)
        self.assertIn('[delivery] connection', message)
        self.assertIn('cannot be opened: DatabaseError: file is not a '
                      'database', message)
        self.assertIn('may connect to it and write to it', message)

    def test_tables_that_cannot_be_made_say_so(self):
        # Another program's index has the name of ours.
        with sqlite3.connect(os.path.join(self.state_path,
                                          'deliveries.sqlite')) as db:
            db.execute('CREATE TABLE notes (owner TEXT)')
            db.execute('CREATE INDEX doctor_deliveries_owner_status '
                       'ON notes (owner)')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                store_mod.DeliveryStore, self.url())
        message = str(exc)
        self.assertIn('is open, but its tables cannot be made: '
                      'OperationalError: index doctor_deliveries_owner_status'
                      ' already exists', message)
        self.assertIn('may create tables in it', message)
        # Nothing half made: the table went with the index that failed.
        engine = sa.create_engine(self.url())
        with engine.connect() as conn:
            self.assertFalse(sa.inspect(conn).has_table('doctor_deliveries'))
        engine.dispose()
