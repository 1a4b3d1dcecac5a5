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

"""URLs fit for a log line: every password replaced by ``***``.

Notifier targets, transport URLs (``rabbit://u:p@h1,u:p@h2/``), proxies
and database URLs all pass through :func:`redact` before they are logged,
put in an error, or shown by a command.
"""

from __future__ import annotations

import re

# user:password@ in the authority; a transport URL has one per host.
_USERINFO = re.compile(r'(?P<user>[^:@/,]*):(?P<password>[^@/,]*)@')


def redact(url: str) -> str:
    """``url`` with every password in it replaced by ``***``."""
    scheme, sep, rest = url.partition('://')
    if not sep:
        return url
    authority, slash, tail = rest.partition('/')
    # A password may itself hold '@' when it was not quoted: the last
    # '@' ends the userinfo of a single-host URL.
    if ',' not in authority and authority.count('@') > 1:
        userinfo, host = authority.rsplit('@', 1)
        user = userinfo.split(':', 1)[0]
        redacted = f'{user}:***@{host}' if ':' in userinfo else authority
    else:
        redacted = _USERINFO.sub(
            lambda m: f"{m.group('user')}:***@", authority)
    return f'{scheme}{sep}{redacted}{slash}{tail}'
