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

"""Exception types raised by doctor_plugin.

Every message says what went wrong and, where the user can fix it, how.
"""


class DoctorPluginError(Exception):
    """Base class of every error doctor_plugin raises on purpose."""


class PluginLoadError(DoctorPluginError):
    """A configured plugin could not be found or failed to load."""

    def __init__(self, namespace: str, name: str, available: list[str],
                 reason: str | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.available = sorted(available)
        detail = f': {reason}' if reason else ''
        super().__init__(
            f"cannot load plugin {name!r} from entry point namespace "
            f"{namespace!r}{detail}. Available plugins: "
            f"{', '.join(self.available) or '(none installed)'}. "
            f"Check the spelling in your configuration, or install the "
            f"package that provides it.")


class ConfigurationError(DoctorPluginError):
    """A configuration or definition file is invalid."""

    def __init__(self, source: str, entry: str | None, problem: str) -> None:
        self.source = source
        self.entry = entry
        self.problem = problem
        where = f'{source}: {entry}' if entry else source
        super().__init__(f'{where}: {problem}')


class InvalidPayload(DoctorPluginError):
    """A raw payload given to a transformer is malformed.

    :param field: dotted path of the offending field (``0.details.status``)
    :param problem: what is wrong with it
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f'{field}: {problem}' if field else problem)


class LimitExceeded(InvalidPayload):
    """Well-formed events over a configured limit (traits, lengths)."""


class DeliveryError(DoctorPluginError):
    """A notifier could not deliver a batch of events."""


class CoordinationError(DoctorPluginError):
    """The coordination backend could not be reached or read."""


class NovaError(DoctorPluginError):
    """Nova could not be reached or refused a controller call."""


class NovaAuthError(NovaError):
    """Nova or Keystone refused our credentials or policy (401/403)."""


class NovaUnavailable(NovaError):
    """Nova did not answer in time, or answered 5xx, after retries."""
