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

"""Hand a report to the member that owns its host.

A member that receives a report for a host it does not own sends the
events it made of it (already transformed and checked) to the owner's
``POST /v1/cluster/events``, signed with ``[coordination]
member_secret`` the way webhooks are signed (:mod:`doctor_plugin.signing`:
a timestamp, an HMAC-SHA256 of it and the body, replays refused). The
owner answers once the events are published, so the original sender's
answer still means "recorded".
"""

from __future__ import annotations

import json
import threading
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import http
from doctor_plugin.coordination import membership
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin import signing

LOG = logging.getLogger(__name__)

#: The route of the owner's API that takes handed-over events.
PATH = '/v1/cluster/events'
MEMBER_HEADER = 'X-Doctor-Member'
MIN_SECRET_LENGTH = 16


class OwnerUnreachable(exceptions.DeliveryError):
    """The owner did not take the events; the group may be changing."""


def member_key(conf: cfg.ConfigOpts) -> bytes:
    """``[coordination] member_secret``, checked.

    :raises ConfigurationError: if it is missing or short
    """
    secret = conf.coordination.member_secret or ''
    if len(secret) < MIN_SECRET_LENGTH:
        raise exceptions.ConfigurationError(
            '[coordination] member_secret', None,
            f'must be set, to at least {MIN_SECRET_LENGTH} characters and '
            f'the same on every member, when backend_url is set: members '
            f'hand each other fault reports with it; make one with '
            f'"openssl rand -hex 32"')
    return secret.encode('utf-8')


class Forwarder:
    """Send events to their owner; check the events others send us.

    :param conf: configuration with the ``[coordination]`` options
    :param me: this member (named in what it sends)
    """

    def __init__(self, conf: cfg.ConfigOpts, me: membership.Member) -> None:
        self._key = member_key(conf)
        self.timeout = conf.coordination.forward_timeout
        self.me = me
        self._verifier = signing.Verifier(self._key)
        self._clients: dict[str, http.Client] = {}
        self._lock = threading.Lock()

    def _client(self, url: str) -> http.Client:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = self._clients[url] = http.Client(
                    url.rstrip('/') + PATH, self.timeout, use_proxy=False)
            return client

    def send(self, owner: membership.Member,
             events: typing.Sequence[event_model.Event]) -> None:
        """Have ``owner`` handle ``events``; return once it published them.

        :raises OwnerUnreachable: if the owner did not answer, or not with
            success (it may have died or lost its lease)
        :raises DeliveryError: if the owner could not publish them
        """
        if not owner.url:
            raise OwnerUnreachable(
                f'member {owner.id} owns the host but announced no API URL '
                f'(set its [coordination] advertise_url)')
        body = json.dumps({
            'request_id': str(uuid.uuid4()),
            'events': [ev.serialize() for ev in events],
        }).encode('utf-8')
        headers = {'Content-Type': 'application/json',
                   MEMBER_HEADER: self.me.id}
        signing.sign(self._key, body, headers)
        try:
            response = self._client(owner.url).request('POST', body, headers)
        except http.HTTPError as exc:
            raise OwnerUnreachable(
                f'member {owner.id} at {owner.url} did not answer: '
                f'{http.describe(exc, self.timeout)}') from exc
        if response.status == 200:
            return
        if response.status in (409, 503) or response.status >= 500:
            raise OwnerUnreachable(
                f'member {owner.id} at {owner.url} answered '
                f'{response.status}: {response.excerpt()}')
        raise exceptions.DeliveryError(
            f'member {owner.id} at {owner.url} refused the events it owns '
            f'({response.status}: {response.excerpt()}); check that every '
            f'member has the same [coordination] member_secret')

    def receive(self, headers: typing.Mapping[str, str],
                body: bytes) -> list[event_model.Event]:
        """The events of a member's request, if it is genuine.

        :raises PermissionError: if it is not signed by a member
        :raises InvalidPayload: if it is signed but malformed
        """
        problem = self._verifier.check(headers, body)
        if problem is not None:
            raise PermissionError(problem)
        try:
            data = json.loads(body)
            items = data['events']
            if not isinstance(items, list):
                raise ValueError("'events' must be a list")
            return [event_model.Event.deserialize(item) for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise exceptions.InvalidPayload(
                'events', f'handed-over events are malformed: {exc}'
            ) from None

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
