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

"""What ``doctor-plugin status`` shows: the cluster as its parts see it.

Three sources, each read as it is now:

- the coordination backend: the members of ``<group>.inspector`` and
  ``<group>.listener``, read without joining;
- each inspector's ``GET /healthz``: whether it holds a lease and how many
  members it sees (members that disagree are still converging, or one is
  cut off);
- the shared database: each host's last claimed state and who claimed
  it, and the deliveries pending per owner (an owner that is not in its
  group any more is waiting for a survivor to take its rows over).

The owner of each host is computed with the ring the members build, over
the hosts of the claims and those the caller adds (the command adds
``[inspector] topology_file``'s).
"""

from __future__ import annotations

import os
import socket
import typing

from oslo_config import cfg
from oslo_utils import netutils
import requests

from doctor_plugin.common import urls
from doctor_plugin.coordination import membership as membership_mod
from doctor_plugin.delivery import store as store_mod
from doctor_plugin import exceptions

#: The programs whose members join ``<group>.<kind>``.
KINDS = ('inspector', 'listener')


def gather(conf: cfg.ConfigOpts, hosts: typing.Iterable[str] = (),
           http_timeout: float = 2.0) -> dict[str, typing.Any]:
    """The status, as plain data (what ``status --json`` prints).

    :param hosts: hosts to show besides those with a claim (the
        topology's)

    :raises CoordinationError: if the backend could not be read
    :raises DeliveryError: if the database could not be read
    """
    opts = conf.coordination
    result: dict[str, typing.Any] = {
        'coordination': {
            'backend_url': urls.redact(opts.backend_url or ''),
            'group': opts.group,
            'enabled': bool(opts.backend_url)},
        'members': {kind: [] for kind in KINDS},
        'hosts': {},
        'pending': {},
    }
    groups = _read_groups(conf) if opts.backend_url else {}
    for kind, members in groups.items():
        result['members'][kind] = [
            {'id': m.id, 'url': m.url,
             'health': (_health(m.url, http_timeout)
                        if kind == 'inspector' and m.url else None)}
            for m in sorted(members.values(), key=lambda m: m.id)]
    store = _open_store(conf.delivery.connection)
    try:
        states = _host_states(store)
        pending = store.pending_by_owner()
    finally:
        store.close()
    view = membership_mod.View.of(groups.get('inspector', {}))
    for host in sorted(set(states) | set(hosts)):
        state, event_id, claimed_by, updated_at = states.get(
            host, (None, None, None, None))
        result['hosts'][host] = {
            'owner': (view.owner_id(host) if opts.backend_url
                      else 'this process (no coordination)'),
            'state': state, 'event_id': event_id,
            'claimed_by': claimed_by, 'updated_at': updated_at}
    known = {m['id'] for ms in result['members'].values() for m in ms}
    result['pending'] = {
        owner: {'pending': count,
                'in_group': owner in known if opts.backend_url else None}
        for owner, count in sorted(pending.items())}
    return result


def _read_groups(conf: cfg.ConfigOpts
                 ) -> dict[str, dict[str, membership_mod.Member]]:
    opts = conf.coordination
    _probe(opts.backend_url, max(opts.backend_timeout, 2.0))
    observer = f'status-{socket.gethostname()}-{os.getpid()}'
    coordinator = membership_mod.make_coordinator(
        opts.backend_url, observer, opts.member_timeout,
        max(opts.backend_timeout, 2.0), opts.group)
    try:
        coordinator.start(start_heart=False)
    except Exception as exc:
        raise exceptions.CoordinationError(
            f'could not reach the coordination backend '
            f'{urls.redact(opts.backend_url)}: {type(exc).__name__}: {exc};'
            f' check that it runs and that [coordination] backend_url '
            f'points at it') from None
    try:
        return {kind: membership_mod.read_group(
                    coordinator, f'{opts.group}.{kind}',
                    max(opts.backend_timeout, 2.0))
                for kind in KINDS}
    except Exception as exc:
        raise exceptions.CoordinationError(
            f'could not read the groups {opts.group}.* at '
            f'{urls.redact(opts.backend_url)}: {type(exc).__name__}: '
            f'{exc}') from None
    finally:
        try:
            coordinator.stop()
        except Exception:  # nosec: B110 - the answer is already read
            pass


def _probe(url: str, timeout: float) -> None:
    """Fail at once if the backend's address refuses connections.

    tooz and its client libraries retry a refused connection for up to a
    minute (redis-py backs off ten times, tooz tries fifteen); a person
    waiting at the command line wants the answer now.
    """
    parts = netutils.urlsplit(url)
    if not parts.hostname or not parts.port:
        return
    try:
        socket.create_connection((parts.hostname, parts.port),
                                 timeout).close()
    except OSError as exc:
        raise exceptions.CoordinationError(
            f'could not reach the coordination backend {urls.redact(url)}: '
            f'{exc}; check that it runs and that [coordination] '
            f'backend_url points at it') from None


def _open_store(url: str) -> store_mod.DeliveryStore:
    try:
        return store_mod.DeliveryStore(url)
    except Exception as exc:
        raise exceptions.DeliveryError(
            f'could not open the delivery database {urls.redact(url)}: '
            f'{type(exc).__name__}: {exc}') from None


def _host_states(store: store_mod.DeliveryStore
                 ) -> dict[str, tuple[str, str, str, float]]:
    from doctor_plugin.coordination import claims as claims_mod

    return claims_mod.HostClaims(store, '', 0.0).states()


def _health(url: str, timeout: float) -> dict[str, typing.Any]:
    try:
        reply = requests.get(f'{url.rstrip("/")}/healthz', timeout=timeout)
        body = reply.json()
    except (requests.RequestException, ValueError) as exc:
        return {'reachable': False,
                'error': f'{type(exc).__name__}: {exc}'}
    coordination = body.get('coordination') or {}
    return {'reachable': True, 'status': reply.status_code,
            'lease': coordination.get('lease'),
            'members': coordination.get('members'),
            'version': coordination.get('version')}


def render(status: dict[str, typing.Any]) -> list[str]:
    """The status as the lines ``doctor-plugin status`` prints."""
    coordination = status['coordination']
    lines: list[str] = []
    if not coordination['enabled']:
        lines.append('Coordination: none ([coordination] backend_url is '
                     'empty); one inspector handles every host')
    else:
        lines.append(f"Coordination: {coordination['backend_url']}, "
                     f"groups {coordination['group']}.inspector and "
                     f"{coordination['group']}.listener")
        for kind in KINDS:
            members = status['members'][kind]
            lines.append(f'{kind.capitalize()}s ({len(members)}):')
            for m in members:
                lines.append(f"  {m['id']}  {m['url'] or '-'}"
                             f"{_health_text(m['health'], len(members))}")
    hosts = status['hosts']
    lines.append(f'Hosts ({len(hosts)}):')
    for host, h in hosts.items():
        state = (f"{h['state']} (event {h['event_id']}, claimed by "
                 f"{h['claimed_by']})" if h['state'] else 'no report yet')
        lines.append(f"  {host}  owner {h['owner'] or 'none'}  {state}")
    pending = status['pending']
    total = sum(p['pending'] for p in pending.values())
    lines.append(f'Pending deliveries ({total}):')
    for owner, p in pending.items():
        note = ('' if p['in_group'] is not False
                else '  (not in its group: a survivor takes them over)')
        lines.append(f"  {owner}  {p['pending']}{note}")
    return lines


def _health_text(health: dict[str, typing.Any] | None, size: int) -> str:
    if health is None:
        return ''
    if not health['reachable']:
        return f"  unreachable ({health['error']})"
    text = (f"  lease {'yes' if health['lease'] else 'NO'}, sees "
            f"{health['members']} member(s)")
    if health['members'] != size:
        text += f' (the group has {size}: still converging, or cut off)'
    return text
