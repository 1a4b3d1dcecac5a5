"""One place for the oslo.messaging plumbing the services share.

Transports are expensive (a connection pool each), so a process keeps one
notification transport per URL and every notifier and listener reuses it.
"""

from __future__ import annotations

import threading
import typing

from oslo_config import cfg
import oslo_messaging

_TRANSPORTS: dict[str | None, oslo_messaging.Transport] = {}
_LOCK = threading.Lock()

#: The transport the demo uses when no broker is given: in-process.
FAKE_TRANSPORT_URL = 'fake://'


def get_transport(conf: cfg.ConfigOpts,
                  url: str | None = None) -> oslo_messaging.Transport:
    """The process's notification transport for ``url``.

    With ``url`` None, oslo.messaging's own options decide
    (``[oslo_messaging_notifications] transport_url``, then
    ``[DEFAULT] transport_url``).
    """
    with _LOCK:
        transport = _TRANSPORTS.get(url)
        if transport is None:
            transport = oslo_messaging.get_notification_transport(
                conf, url=url)
            _TRANSPORTS[url] = transport
        return transport


def cleanup() -> None:
    """Close every cached transport (at shutdown, and between tests)."""
    with _LOCK:
        transports = list(_TRANSPORTS.values())
        _TRANSPORTS.clear()
    for transport in transports:
        transport.cleanup()


def get_listener(transport: oslo_messaging.Transport,
                 topics: typing.Iterable[str],
                 endpoints: list, pool: str | None = None,
                 batch_size: int | None = None,
                 batch_timeout: float | None = None
                 ) -> oslo_messaging.MessageHandlingServer:
    """A threaded notification listener on ``topics``.

    Listeners that share a ``pool`` name compete for messages (work
    sharing); distinct pools each get every message. With ``batch_size``
    the endpoints receive lists of messages.
    """
    targets = [oslo_messaging.Target(topic=topic) for topic in topics]
    if batch_size:
        return oslo_messaging.get_batch_notification_listener(
            transport, targets, endpoints, executor='threading',
            pool=pool, batch_size=batch_size, batch_timeout=batch_timeout)
    return oslo_messaging.get_notification_listener(
        transport, targets, endpoints, executor='threading', pool=pool)
