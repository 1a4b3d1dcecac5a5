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

"""Tests for doctor_plugin.common.context: one service's pools."""

import threading

from doctor_plugin.common import activity
from doctor_plugin.common import context
from doctor_plugin.common import profiler
from doctor_plugin.tests import base


def pool_threads(prefix):
    return [t for t in threading.enumerate()
            if t.name.startswith(prefix + '_')]


class TestServiceContext(base.TestCase):

    def make(self, name='test'):
        ctx = context.ServiceContext(name)
        self.addCleanup(ctx.close)
        return ctx

    def test_defaults_are_fresh_objects(self):
        one, two = self.make(), self.make()
        self.assertIsInstance(one.timeline, profiler.Timeline)
        self.assertIsInstance(one.activity, activity.Activity)
        one.timeline.mark('f1', 'T01')
        self.assertEqual({}, two.timeline.marks('f1'))
        one.activity.begin()
        self.addCleanup(one.activity.end)
        self.assertFalse(one.activity.wait_idle(0))
        self.assertTrue(two.activity.wait_idle(0))

    def test_given_timeline_and_activity_are_kept(self):
        timeline, work = profiler.Timeline(), activity.Activity()
        ctx = context.ServiceContext('x', timeline=timeline, activity=work)
        self.assertIs(timeline, ctx.timeline)
        self.assertIs(work, ctx.activity)

    def test_a_pool_is_made_once_by_name(self):
        ctx = self.make()
        pool = ctx.executor('doctor-test-once', 2)
        self.assertIs(pool, ctx.executor('doctor-test-once', 5))
        self.assertEqual(['doctor-test-once'], list(ctx.executors))
        self.assertEqual('doctor-test-once_0',
                         pool.submit(lambda: threading.current_thread().name)
                         .result(5))

    def test_initializer_runs_in_each_thread(self):
        ctx = self.make()
        seen = []
        pool = ctx.executor('doctor-test-init', 1, seen.append, ('hello',))
        pool.submit(lambda: None).result(5)
        self.assertEqual(['hello'], seen)

    def test_close_ends_every_thread_and_lets_work_finish(self):
        ctx = self.make()
        release = threading.Event()
        done = []

        def work():
            release.wait(5)
            done.append(True)

        futures = [ctx.executor('doctor-test-close', 2).submit(work),
                   ctx.executor('doctor-test-close', 2).submit(work),
                   ctx.executor('doctor-test-other', 1).submit(work)]
        self.assertEqual(3, len(ctx.threads()))
        release.set()
        self.assertEqual([], ctx.close(timeout=5))
        self.assertEqual([True] * 3, done)
        self.assertTrue(all(f.done() for f in futures))
        self.assertEqual([], pool_threads('doctor-test-close'))
        self.assertEqual([], pool_threads('doctor-test-other'))
        self.assertEqual([], ctx.threads())

    def test_close_reports_threads_left_after_the_timeout(self):
        ctx = self.make()
        release = threading.Event()
        self.addCleanup(release.set)
        ctx.executor('doctor-test-stuck', 1).submit(release.wait, 10)
        self.assertEqual(['doctor-test-stuck_0'], ctx.close(timeout=0.05))
        release.set()

    def test_no_pool_after_close(self):
        ctx = self.make()
        ctx.close()
        self.assertRaises(RuntimeError, ctx.executor, 'doctor-test-late', 1)

    def test_closing_one_context_leaves_the_others_pools(self):
        # Same pool name in two services of one process.
        one, two = self.make('one'), self.make('two')
        one.executor('doctor-test-shared', 1).submit(lambda: None).result(5)
        pool = two.executor('doctor-test-shared', 1)
        pool.submit(lambda: None).result(5)
        (theirs,) = two.threads()
        self.assertEqual([], one.close(timeout=5))
        self.assertTrue(theirs.is_alive())
        self.assertEqual(4, pool.submit(lambda: 2 + 2).result(5))
