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

"""The fencer contract: read a host's power state, power it off."""

from __future__ import annotations

import abc
import dataclasses
import typing

from oslo_config import cfg

#: The host was powered off and is off.
FENCED = 'fenced'
#: The host was off already: nothing had to be done.
ALREADY_OFF = 'already_off'
#: The BMC refused, or could not be reached or logged in to.
FAILED = 'failed'
#: The attempt did not end within its timeout.
TIMED_OUT = 'timed_out'
#: No fencing is configured.
NONE = 'none'

OUTCOMES = (FENCED, ALREADY_OFF, FAILED, TIMED_OUT, NONE)
#: The outcomes after which the controller may force the host down.
SAFE = frozenset({FENCED, ALREADY_OFF, NONE})

#: What :meth:`FencerBase.power_state` answers.
POWER_STATES = ('on', 'off', 'unknown')


@dataclasses.dataclass(slots=True)
class FenceResult:
    """How one fence attempt of ``host`` went.

    :param outcome: one of :data:`OUTCOMES`
    :param error: why it failed or timed out, '' otherwise (never a
        password)
    :param started: when the attempt started (``time.time()``)
    :param finished: when it ended (``time.time()``)
    """

    host: str
    outcome: str
    error: str = ''
    started: float = 0.0
    finished: float = 0.0

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f'fence outcome must be one of '
                             f'{", ".join(OUTCOMES)}, not {self.outcome!r}')

    @property
    def duration_ms(self) -> float:
        return (self.finished - self.started) * 1000.0

    @property
    def safe(self) -> bool:
        """Whether the host may be forced down after this."""
        return self.outcome in SAFE


class FencerBase(abc.ABC):
    """Make sure a host is off, through something other than the host.

    A fencer is called from several threads at once, for different hosts
    or the same one. Neither method raises for an unreachable or refusing
    BMC: a fence says so in its result, a power state read answers
    ``unknown`` and logs why.

    :param conf: the configuration (its ``[fencing]`` options)
    """

    #: The entry point name, as ``[fencing] driver`` names the plugin.
    name: typing.ClassVar[str]

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @abc.abstractmethod
    def power_state(self, host: str, timeout: float) -> str:
        """``on``, ``off`` or ``unknown``: ``host``'s power, as its BMC says.

        :param timeout: seconds to wait for the answer at most
        """

    @abc.abstractmethod
    def fence(self, host: str, timeout: float) -> FenceResult:
        """Power ``host`` off, unless it is off already; once.

        Returns once the host is off, or the attempt failed, or
        ``timeout`` seconds have passed.
        """

    def close(self) -> None:
        """Release what the fencer holds (connections, threads)."""
