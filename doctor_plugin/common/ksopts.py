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

"""keystoneauth1's options, as the groups that authenticate list them.

keystoneauth1 hands out its session, adapter and auth options in lists
that overlap (``timeout``, ...); oslo.config refuses to register one
name twice in a group. The ``[nova]`` and ``[monitor_auth]`` groups
build their lists with these.
"""

from __future__ import annotations

import typing

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg


def unique(opts: typing.Iterable[cfg.Opt]) -> list[cfg.Opt]:
    """``opts`` without the later ones of a name already listed."""
    seen: set[str] = set()
    out = []
    for opt in opts:
        if opt.dest not in seen:
            seen.add(opt.dest)
            out.append(opt)
    return out


def with_password_plugin(opts: typing.Iterable[cfg.Opt]) -> list[cfg.Opt]:
    """A group's options and the ``password`` plugin's, for the generator.

    The plugin's options are registered by keystoneauth1 when it loads
    the plugin ``auth_type`` names; registering them up front would make
    its ``auth_url`` required even with ``auth_type = none``. The sample
    documents the plugin a deployment uses with a service user.
    """
    return unique(list(opts)
                  + ks_loading.get_auth_plugin_conf_options('password'))
