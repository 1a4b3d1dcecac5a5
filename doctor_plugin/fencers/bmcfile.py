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

"""The BMC file: how to reach each host's BMC (``[fencing] bmc_file``).

::

    hosts:
      compute-0:
        address: 192.0.2.10     # the BMC's address, not the host's
        port: 623               # optional
        username: fencer
        password: secret

It is read and checked when the fencer loads, so that a typo is a start-up
error naming the file, the host and the key, not a failed fence in the
middle of a fault. Passwords are never logged nor put in an error.
"""

from __future__ import annotations

import dataclasses

from doctor_plugin.common import yamlfile
from doctor_plugin import exceptions

OPTION = '[fencing] bmc_file'

#: IPMI 2.0 limits (user name 16 bytes, password 20 bytes).
MAX_USERNAME = 16
MAX_PASSWORD = 20

_REQUIRED = ('address', 'username', 'password')
_KEYS = ('address', 'port', 'username', 'password')


@dataclasses.dataclass(frozen=True, slots=True)
class BmcCredentials:
    """Where a host's BMC listens and who logs in to it."""

    address: str
    username: str
    password: str = dataclasses.field(repr=False)
    port: int = 623


def load(path: str) -> dict[str, BmcCredentials]:
    """The BMC of each host, from the file at ``path``.

    :raises ConfigurationError: naming the file, the entry
        (``hosts.<host>.<key>``) and what is wrong with it
    """
    data = yamlfile.load(path, 'the BMC file', OPTION)
    if not isinstance(data, dict) or set(data) != {'hosts'}:
        raise exceptions.ConfigurationError(
            path, None, 'must be a mapping with one key, "hosts", mapping '
                        'each host to its BMC\'s address, port, username '
                        'and password')
    hosts = data['hosts']
    if not isinstance(hosts, dict) or not hosts:
        raise exceptions.ConfigurationError(
            path, 'hosts', 'must map at least one host (as Nova names it) '
                           'to its BMC')
    return {_host_name(path, host): _credentials(path, host, entry)
            for host, entry in hosts.items()}


def _host_name(path: str, host: object) -> str:
    if not isinstance(host, str) or not host:
        raise exceptions.ConfigurationError(
            path, f'hosts.{host}', 'a host name must be a non-empty string')
    return host


def _credentials(path: str, host: str, entry: object) -> BmcCredentials:
    where = f'hosts.{host}'
    if not isinstance(entry, dict):
        raise exceptions.ConfigurationError(
            path, where, f'must be a mapping with the keys '
                         f'{", ".join(_KEYS)}')
    unknown = sorted(str(key) for key in entry if key not in _KEYS)
    if unknown:
        raise exceptions.ConfigurationError(
            path, f'{where}.{unknown[0]}',
            f'unknown key; expected {", ".join(_KEYS)}')
    for key in _REQUIRED:
        if key not in entry:
            raise exceptions.ConfigurationError(
                path, f'{where}.{key}', 'is missing')
        value = entry[key]
        if not isinstance(value, str) or not value:
            # The value is not shown: it may be a password.
            raise exceptions.ConfigurationError(
                path, f'{where}.{key}',
                f'must be a non-empty string, not {type(value).__name__}'
                f'{" (quote it)" if isinstance(value, (int, float)) else ""}')
    for key, limit in (('username', MAX_USERNAME),
                       ('password', MAX_PASSWORD)):
        if len(entry[key].encode('utf-8')) > limit:
            raise exceptions.ConfigurationError(
                path, f'{where}.{key}',
                f'is longer than IPMI allows ({limit} bytes)')
    port = entry.get('port', 623)
    if (not isinstance(port, int) or isinstance(port, bool)
            or not 1 <= port <= 65535):
        raise exceptions.ConfigurationError(
            path, f'{where}.port',
            f'must be a UDP port number (1-65535), not {port!r}')
    return BmcCredentials(entry['address'], entry['username'],
                          entry['password'], port)
