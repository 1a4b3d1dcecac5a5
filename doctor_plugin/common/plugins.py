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

"""Load plugins by name from their stevedore entry point namespaces.

Every pluggable piece is found through its namespace, never imported by
path. A misspelt or broken plugin is a startup error that names the
namespace and the entry point and lists what is installed.
"""

from __future__ import annotations

import importlib.metadata
import typing
from urllib import parse as urlparse

from oslo_log import log as logging
import stevedore

from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)

TRANSFORMERS_NAMESPACE = 'doctor_plugin.transformers'
#: Event notifiers: a pipeline sink's targets (``notify(events)``).
NOTIFIERS_NAMESPACE = 'doctor_plugin.notifiers'
#: Alarm actions: what an alarm's action URL names
#: (``notify(notification)``).
ALARM_ACTIONS_NAMESPACE = 'doctor_plugin.alarm_actions'
MONITORS_NAMESPACE = 'doctor_plugin.monitors'


def available(namespace: str) -> list[str]:
    """Names of the entry points installed in ``namespace``."""
    return sorted({ep.name for ep in
                   importlib.metadata.entry_points(group=namespace)})


def load_driver(namespace: str, name: str, *args: typing.Any,
                **kwargs: typing.Any) -> typing.Any:
    """Load and instantiate exactly one plugin.

    Use this when configuration names a single plugin (a monitor, the
    notifier for one URL scheme). ``args``/``kwargs`` are passed to the
    plugin's constructor.

    :raises PluginLoadError: if the entry point is missing, fails to import
        or its constructor raises.
    """
    failure: list[BaseException] = []

    def on_failure(manager, entrypoint, exc):
        failure.append(exc)

    try:
        mgr = stevedore.DriverManager(
            namespace, name, invoke_on_load=True,
            invoke_args=args, invoke_kwds=kwargs,
            on_load_failure_callback=on_failure)
    except stevedore.exception.NoMatches:
        if failure and isinstance(failure[0],
                                  exceptions.DoctorPluginError):
            raise failure[0] from None
        reason = (f'{type(failure[0]).__name__}: {failure[0]}'
                  if failure else 'no such entry point')
        raise exceptions.PluginLoadError(
            namespace, name, available(namespace), reason) from None
    except exceptions.DoctorPluginError:
        raise
    except Exception as exc:
        raise exceptions.PluginLoadError(
            namespace, name, available(namespace),
            f'{type(exc).__name__}: {exc}') from exc
    return mgr.driver


def load_named(namespace: str, names: typing.Iterable[str],
               *args: typing.Any, **kwargs: typing.Any
               ) -> dict[str, typing.Any]:
    """Load and instantiate several plugins, keeping their names.

    :raises PluginLoadError: for the first name that cannot be loaded.
    """
    return {name: load_driver(namespace, name, *args, **kwargs)
            for name in names}


def notifier_scheme(url: str) -> str:
    """The entry point name that handles a notifier URL: its scheme."""
    scheme = urlparse.urlsplit(url).scheme
    if not scheme:
        raise exceptions.ConfigurationError(
            'notifier URL', url,
            'has no scheme; write it as scheme://..., e.g. log:// or '
            'messaging://?topic=alarm.all or https://host/path')
    return scheme


def _context_kwargs(context: typing.Any) -> dict[str, typing.Any]:
    # A plugin is built with (conf, url) alone when no service context is
    # given, as before contexts existed.
    return {} if context is None else {'context': context}


def load_notifier(conf: typing.Any, url: str,
                  context: typing.Any = None) -> typing.Any:
    """Load the event notifier for ``url``, chosen by its scheme.

    :param context: the loading service's
        :class:`~doctor_plugin.common.context.ServiceContext`, passed to
        the plugin as ``context=``
    """
    return load_driver(NOTIFIERS_NAMESPACE, notifier_scheme(url), conf, url,
                       **_context_kwargs(context))


def load_alarm_action(conf: typing.Any, url: str,
                      context: typing.Any = None) -> typing.Any:
    """Load the alarm action plugin for ``url``, chosen by its scheme."""
    return load_driver(ALARM_ACTIONS_NAMESPACE, notifier_scheme(url),
                       conf, url, **_context_kwargs(context))


def describe(namespace: str) -> list[tuple[str, str]]:
    """Each installed plugin of ``namespace`` and whether it imports.

    The plugins are imported, not constructed.
    """
    rows = []
    for ep in sorted(importlib.metadata.entry_points(group=namespace),
                     key=lambda e: e.name):
        try:
            ep.load()
        except Exception as exc:
            rows.append((ep.name, f'BROKEN: {type(exc).__name__}: {exc}'))
        else:
            rows.append((ep.name, f'ok ({ep.value})'))
    return rows
