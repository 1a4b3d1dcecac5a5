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

"""Who is calling the inspector API: Keystone tokens or a shared secret.

A fault report makes the cloud fence a host and its tenants fail over, so
no one may report without proving who they are. ``[inspector]
auth_strategy`` picks how:

``shared_secret`` (the default)
    the caller sends ``[inspector] shared_secret`` in ``X-Auth-Token``; it
    is compared in constant time and the caller gets the roles of
    ``[inspector] shared_secret_roles``. For an inspector without Keystone.
``keystone``
    keystonemiddleware's ``auth_token`` validates the token in
    ``X-Auth-Token`` with the ``[keystone_authtoken]`` options; the caller
    gets the token's roles and project.
``noauth``
    every request is let in; for test beds only.

An :class:`Authenticator` only establishes credentials; what a caller may
do is the policy's decision (:mod:`doctor_plugin.policies`).
"""

from __future__ import annotations

import abc
import dataclasses
import hmac
import typing

from oslo_config import cfg
from oslo_log import log as logging
import webob

from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)

#: The request header carrying the token or the shared secret.
TOKEN_HEADER = 'X-Auth-Token'
#: Below this many characters a shared secret is worth a warning.
MIN_SECRET_LENGTH = 16
#: The realm named in the shared-secret challenge.
REALM = 'doctor-plugin-inspector'

GROUP = 'inspector'

OPTS = [
    cfg.StrOpt('auth_strategy',
               default='shared_secret',
               choices=[('shared_secret',
                         'callers send [inspector] shared_secret in the '
                         'X-Auth-Token header'),
                        ('keystone',
                         'callers send a Keystone token in X-Auth-Token, '
                         'validated by keystonemiddleware with the '
                         '[keystone_authtoken] options'),
                        ('noauth',
                         'no authentication and no policy: anyone who can '
                         'reach the API may report faults; test beds '
                         'only')],
               help='How the inspector API authenticates its callers. '
                    'GET /healthz is always open.'),
    cfg.StrOpt('shared_secret',
               secret=True,
               help='With auth_strategy = shared_secret: the secret callers '
                    'send in the X-Auth-Token header (the monitors\' '
                    '[monitor] inspector_secret). Required with that '
                    'strategy; use a long random string, e.g. the output '
                    'of "openssl rand -hex 32".'),
    cfg.ListOpt('shared_secret_roles',
                default=['doctor_monitor'],
                help='With auth_strategy = shared_secret: the roles a '
                     'caller holding the secret has, for the policy '
                     '(doctor_plugin.policies).'),
]


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """What an authenticated caller is, as the policy sees it."""

    roles: tuple[str, ...]
    project_id: str | None = None
    user_id: str | None = None

    def as_policy_creds(self) -> dict[str, typing.Any]:
        """The ``creds`` dict oslo.policy's enforcer takes."""
        return {'roles': list(self.roles), 'project_id': self.project_id,
                'user_id': self.user_id}


class Authenticator(metaclass=abc.ABCMeta):
    """One authentication strategy of the inspector API."""

    #: Whether the policy decides what authenticated callers may do;
    #: False lets every request through (``noauth``).
    enforces_policy = True

    #: The ``WWW-Authenticate`` header of a 401 answer (None: the
    #: strategy's middleware sets it).
    challenge: str | None = f'{TOKEN_HEADER} realm="{REALM}"'
    #: What a caller must send in ``X-Auth-Token``, for a 401's message.
    credential = 'a valid token'

    def wrap(self, app: typing.Callable) -> typing.Callable:
        """The WSGI ``app`` behind whatever middleware this strategy needs.

        Called once, at start; the default needs none.
        """
        return app

    @abc.abstractmethod
    def authenticate(self, req: webob.Request) -> Credentials | None:
        """The caller's credentials, or None if it did not prove any.

        :param req: the request, after the middleware of :meth:`wrap`
        """


class SharedSecretAuthenticator(Authenticator):
    """Callers holding ``[inspector] shared_secret`` have its roles."""

    credential = ("the inspector's shared secret (the monitors' [monitor] "
                  "inspector_secret)")

    def __init__(self, secret: str, roles: typing.Iterable[str]) -> None:
        self._secret = secret.encode('utf-8')
        self._credentials = Credentials(roles=tuple(roles))

    def authenticate(self, req: webob.Request) -> Credentials | None:
        token = req.environ.get('HTTP_X_AUTH_TOKEN')
        if token is None:
            return None
        # WSGI gives header bytes as latin-1 text: back to those bytes.
        try:
            presented = token.encode('latin-1')
        except UnicodeEncodeError:
            return None
        if hmac.compare_digest(presented, self._secret):
            return self._credentials
        return None


class KeystoneAuthenticator(Authenticator):
    """Keystone tokens, validated by keystonemiddleware's ``auth_token``.

    The middleware runs with ``delay_auth_decision``: it validates the
    token, strips any identity headers the client sent and sets its own
    (``X-Identity-Status``, ``X-Roles``, ``X-Project-Id``,
    ``X-User-Id``); the decision, and its JSON answer, stay ours.
    """

    credential = 'a valid Keystone token'
    # auth_token adds ``Keystone uri="..."`` to every 401 of ours.
    challenge = None

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    def wrap(self, app: typing.Callable) -> typing.Callable:
        from keystonemiddleware import auth_token

        return auth_token.AuthProtocol(
            app, {'oslo_config_config': self.conf,
                  'delay_auth_decision': True})

    def authenticate(self, req: webob.Request) -> Credentials | None:
        environ = req.environ
        if environ.get('HTTP_X_IDENTITY_STATUS') != 'Confirmed':
            return None
        roles = environ.get('HTTP_X_ROLES', '')
        return Credentials(
            roles=tuple(r.strip() for r in roles.split(',') if r.strip()),
            project_id=environ.get('HTTP_X_PROJECT_ID'),
            user_id=environ.get('HTTP_X_USER_ID'))


class NoAuthAuthenticator(Authenticator):
    """Everyone is let in, with no roles and no policy check."""

    enforces_policy = False

    def authenticate(self, req: webob.Request) -> Credentials | None:
        return Credentials(roles=())


def make_authenticator(conf: cfg.ConfigOpts) -> Authenticator:
    """The authenticator ``[inspector] auth_strategy`` names.

    :raises doctor_plugin.exceptions.ConfigurationError: if the strategy's
        settings are missing (no ``shared_secret`` with ``shared_secret``)
    """
    group = conf.inspector
    strategy = group.auth_strategy
    if strategy == 'keystone':
        LOG.info('Inspector API: Keystone tokens, validated with the '
                 '[keystone_authtoken] options')
        return KeystoneAuthenticator(conf)
    if strategy == 'noauth':
        LOG.warning('Inspector API: [inspector] auth_strategy is noauth: '
                    'anyone who can reach the API can report host faults '
                    'and make the cloud fence hosts. Use it on test beds '
                    'only; set auth_strategy to shared_secret or keystone '
                    'anywhere else.')
        return NoAuthAuthenticator()
    if not group.shared_secret:
        raise exceptions.ConfigurationError(
            '[inspector] auth_strategy', 'shared_secret',
            'no [inspector] shared_secret is set, so no caller could be '
            'let in. Set [inspector] shared_secret to a long random string '
            '(e.g. the output of "openssl rand -hex 32") and give the same '
            'value to the monitors as [monitor] inspector_secret; or set '
            '[inspector] auth_strategy = keystone to take Keystone tokens '
            '([keystone_authtoken] options), or noauth on a test bed.')
    if len(group.shared_secret) < MIN_SECRET_LENGTH:
        LOG.warning('Inspector API: [inspector] shared_secret is shorter '
                    'than %d characters; use a long random one.',
                    MIN_SECRET_LENGTH)
    LOG.info('Inspector API: callers authenticate with the shared secret '
             'and get the role(s) %s', ', '.join(group.shared_secret_roles))
    return SharedSecretAuthenticator(group.shared_secret,
                                     group.shared_secret_roles)
