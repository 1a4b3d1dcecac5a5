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

"""The bus half of R4: hostile messages on the inspector's queue.

A real ``doctor-plugin-inspector`` process listens on RabbitMQ (as in
:mod:`doctor_plugin.bench.reliability`) while the run publishes, on its
topic, messages of every kind a broken or hostile publisher could send:

* bodies oslo.messaging cannot decode (not JSON, JSON that is not its
  envelope, an envelope whose message is not JSON);
* notifications in oslo.messaging's envelope whose payloads are
  hypothesis's hostile and near-valid ``doctor.monitor.report`` and Nova
  ``service.update`` payloads (:mod:`doctor_plugin.bench.hostile`),
  written as a hostile client writes them (NaN, lone surrogates, nesting
  deeper than Python's stack).

The queue carries a RabbitMQ dead-letter policy for the run, as the admin
guide recommends. Then valid reports follow: each must fire its tenant's
alarm at the consumer. Reported: what was sent, whether the inspector
survived, how many were rejected (kept in its database) and
dead-lettered by the broker, the unexpected exceptions its log shows, and
whether the queue was left empty and the valid reports went through.
"""

from __future__ import annotations

import json
import os
import threading
import time
import typing
import uuid

from doctor_plugin.bench import fuzz
from doctor_plugin.bench import harness
from doctor_plugin.bench import reliability
from doctor_plugin.delivery import store as store_mod
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin.testing import broker

#: Hostile messages per run, and the valid reports after them.
MESSAGES = 3000
VALID_AFTER = 100


def _envelope(event_type: str, payload: bytes) -> bytes:
    """oslo.messaging's v2 envelope of a notification with ``payload``."""
    message = (b'{"message_id": "' + str(uuid.uuid4()).encode()
               + b'", "publisher_id": "doctor-r4", "event_type": '
               + json.dumps(event_type).encode()
               + b', "priority": "INFO", "payload": ' + payload
               + b', "timestamp": "2026-12-01 00:00:00.000000"}')
    return json.dumps({'oslo.version': '2.0',
                       'oslo.message': message.decode('utf-8',
                                                      'surrogatepass')},
                      ensure_ascii=True).encode()


#: Bodies the driver cannot decode, each with what it is.
UNDECODABLE = (
    (b'not json at all {', 'not JSON'),
    (b'\xff\xfe\x00garbage', 'not UTF-8'),
    (b'[1, 2, 3]', 'JSON, not the envelope'),
    (b'{"oslo.version": "2.0", "oslo.message": "{not json"}',
     'envelope around broken JSON'),
    (b'{"oslo.version": "2.0"}', 'envelope without a message'),
    (b'{"event_type": "doctor.monitor.report", "payload": []}',
     'a notification without the envelope'),
    (b'', 'empty'),
)


def _generated(count: int) -> list[bytes]:
    """``count`` enveloped hostile notifications, from hypothesis."""
    # The bench extra's, which the installed commands need not.
    harness.require('R4', 'hypothesis')
    import hypothesis
    from hypothesis import strategies as st

    from doctor_plugin.bench import hostile

    kinds = st.one_of(
        st.tuples(st.just(reporter_mod.REPORT_EVENT_TYPE),
                  hostile.fuzzed(hostile.doctor_events())),
        st.tuples(st.just('service.update'),
                  hostile.fuzzed(hostile.nova_service_updates())))
    out: list[bytes] = []

    @hypothesis.settings(max_examples=count, database=None, deadline=None,
                         derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(kinds)
    def collect(kind):
        event_type, payload = kind
        out.append(_envelope(event_type, hostile.encode(payload)))

    collect()
    return out[:count]


def run_bus(options: typing.Any, log: typing.Callable[[str], None]
            ) -> dict[str, typing.Any]:
    """Send hostile messages to a live inspector; what it did with them."""
    count = MESSAGES
    chain = reliability.Chain(options.transport_url, VALID_AFTER, log,
                              transformers='doctor,nova_service')
    dlx = f'{chain.exchange}-dlx'
    try:
        chain.start_consumer()
        chain.start_inspector()
        reliability.rabbitmqctl(
            'set_policy', f'{chain.pool}-dlx', f'^{chain.pool}$',
            json.dumps({'dead-letter-exchange': dlx}),
            '--apply-to', 'queues')
        messages = ([body for body, _ in UNDECODABLE] * 20
                    + _generated(count))
        log(f'R4 bus: publishing {len(messages)} hostile messages')
        with broker.broker_connection(options.transport_url) as conn:
            channel = conn.channel()
            channel.exchange_declare(dlx, 'fanout', durable=True)
            channel.queue_declare(dlx, durable=True)
            channel.queue_bind(dlx, dlx)
            routing_key = f'{chain.topic}.info'
            for body in messages:
                channel.basic_publish(
                    channel.prepare_message(
                        body, content_type='application/json',
                        content_encoding='utf-8'),
                    exchange=chain.exchange, routing_key=routing_key)
            sent_at = time.monotonic()
            # Then valid reports: they must get through.
            sender = reliability.BusSender(chain.conf(), chain.topic)
            stop = threading.Event()
            sender.send(0, VALID_AFTER, 1000.0, stop)
            through = chain.counter.wait_hosts(VALID_AFTER, 60)
            settle = time.monotonic() - sent_at
            left = channel.queue_declare(chain.pool, passive=True)
            dead_lettered = channel.queue_declare(dlx, passive=True)
            channel.queue_delete(dlx)
            channel.exchange_delete(dlx)
            channel.close()
        assert chain.proc is not None  # the chain started it
        alive = chain.proc.poll() is None
        store = store_mod.DeliveryStore(
            f'sqlite:///{os.path.join(chain.dir, "deliveries.sqlite")}')
        try:
            rejected = store.counts()['rejected']
        finally:
            store.close()
        with open(chain.log_files[-1].name, errors='replace') as f:
            text = f.read()
        figures = {
            'bus_messages_sent': len(messages),
            'bus_undecodable_sent': len(UNDECODABLE) * 20,
            'bus_rejected_and_kept': rejected,
            'bus_dead_lettered_by_broker': dead_lettered.message_count,
            'bus_unexpected_exceptions': text.count('could not be handled'),
            'bus_inspector_alive': alive,
            'bus_queue_left': left.message_count,
            'bus_valid_after': VALID_AFTER,
            'bus_valid_through': chain.counter.hosts,
            'bus_settle_s': round(settle, 1),
        }
        figures['bus_stuck'] = not (through and left.message_count == 0)
    finally:
        try:
            reliability.rabbitmqctl('clear_policy', f'{chain.pool}-dlx')
        except Exception as exc:
            log(f'could not clear the dead-letter policy: {exc}')
        chain.stop()
    return figures


def bus_ok(figures: dict[str, typing.Any]) -> bool:
    """Whether the bus half met R4's target: no crash, nothing stuck."""
    return (figures['bus_inspector_alive']
            and figures['bus_unexpected_exceptions'] == 0
            and not figures['bus_stuck'])


def run_r4(options: typing.Any, log: typing.Callable[[str], None]
           ) -> harness.ScenarioResult:
    """R4: the HTTP half (:mod:`~doctor_plugin.bench.fuzz`), then the bus.

    The bus half needs RabbitMQ (``--transport-url rabbit://...``, the
    bench's default) and ``rabbitmqctl`` for the dead-letter policy.
    """
    result = fuzz.run_r4(options, log)
    if not options.transport_url.startswith('rabbit'):
        result.extra['bus'] = 'not run: needs a rabbit:// transport'
        return result
    figures = run_bus(options, log)
    result.extra.update(figures)
    result.sent += figures['bus_messages_sent']
    result.received += figures['bus_messages_sent']
    if not figures['bus_inspector_alive']:
        result.extra['crashes'] += 1
    result.extra['crashes'] += figures['bus_unexpected_exceptions']
    result.extra['stuck'] += int(figures['bus_stuck'])
    result.met = result.met and bus_ok(figures)
    result.transport = 'http+rabbit'
    return result
