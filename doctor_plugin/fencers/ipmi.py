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

"""The ``ipmi`` fencer: power a host off through its BMC, with pyghmi.

pyghmi speaks IPMI 2.0 over LAN (RMCP+ on UDP port 623) from Python, as
Ironic and Confluent use it. A fence reads the power state (a host that
is off already counts as fenced, ``already_off``), asks for a hard power
off, and reads the state again until the BMC says off. Each operation
logs in, acts and logs out: a fence is rare, and a session kept open
could be broken by the BMC's reset without anyone noticing.

pyghmi's calls block, and may take a few seconds to give up on a silent
BMC: each runs in a thread of its own, waited for at most the timeout.
At most one such thread runs per host; a call finding one still running
waits for it, within its own timeout.

Two pyghmi behaviours are worked around here. A session that broke is
remembered under its credentials and handed to the next login with them,
which then fails: it is forgotten first. And a reply that arrives before
pyghmi starts waiting for it is only noticed at the retry timer, 0.5 to
1 s later (on a fast network, a fraction of all calls): such a wait is
cut short when a reply is already queued (:func:`_close_wait_race`).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import typing

from oslo_config import cfg
from oslo_log import log as logging
from pyghmi import exceptions as pyghmi_exc
from pyghmi.ipmi import command as ipmi_command
from pyghmi.ipmi.private import session as pyghmi_session

from doctor_plugin import exceptions
from doctor_plugin.fencers import base
from doctor_plugin.fencers import bmcfile

LOG = logging.getLogger(__name__)

#: Seconds between two reads of the power state after a power off.
POLL_INTERVAL = 0.05

#: The longest pyghmi waits for a reply it already has, in seconds.
QUEUED_WAIT = 0.002

#: pyghmi's messages for a BMC that did not answer.
_NO_ANSWER = frozenset({'', 'None', 'timeout', 'Session no longer connected'})

T = typing.TypeVar('T')


class _TimedOut(Exception):
    """The call did not end in time."""


class _NoBmc(Exception):
    """The host has no entry in the BMC file."""


class IPMIFencer(base.FencerBase):
    """Power hosts off through their BMCs, over IPMI 2.0.

    :raises ConfigurationError: if ``[fencing] bmc_file`` is unset or
        invalid
    """

    name = 'ipmi'

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        path = conf.fencing.bmc_file
        if not path:
            raise exceptions.ConfigurationError(
                bmcfile.OPTION, None,
                'is not set; the ipmi fencer needs the address and '
                'credentials of each host\'s BMC from it (or set '
                '[fencing] driver = none)')
        self.bmcs = bmcfile.load(path)
        self.bmc_file = path
        self._locks = {host: threading.Lock() for host in self.bmcs}
        _close_wait_race()

    def power_state(self, host: str, timeout: float) -> str:
        try:
            state = self._call(host, timeout, lambda cmd, deadline:
                               cmd.get_power()['powerstate'])
        except Exception as exc:
            LOG.warning('Power state of host %s unknown: %s', host,
                        self._explain(host, exc, timeout))
            return 'unknown'
        return state if state in ('on', 'off') else 'unknown'

    def fence(self, host: str, timeout: float) -> base.FenceResult:
        started = time.time()
        try:
            outcome = self._call(host, timeout, _power_off)
            error = ''
        except Exception as exc:
            outcome = (base.TIMED_OUT if self._timed_out(exc)
                       else base.FAILED)
            error = self._explain(host, exc, timeout)
        result = base.FenceResult(host, outcome, error, started,
                                  time.time())
        if result.safe:
            LOG.info('Fenced host %s: %s in %.0f ms', host, outcome,
                     result.duration_ms)
        else:
            LOG.error('Could not fence host %s: %s', host, error)
        return result

    # -- the calls ----------------------------------------------------------

    def _call(self, host: str, timeout: float,
              work: typing.Callable[[ipmi_command.Command, float], T]) -> T:
        """``work(command, deadline)`` on a session with ``host``'s BMC.

        :raises _NoBmc: if the host is not in the BMC file
        :raises _TimedOut: if it does not end within ``timeout``
        :raises: what pyghmi raises
        """
        creds = self.bmcs.get(host)
        if creds is None:
            raise _NoBmc(host)
        deadline = time.monotonic() + timeout
        lock = self._locks[host]
        if not lock.acquire(timeout=timeout):
            raise _TimedOut('an earlier IPMI call to this BMC has not '
                            'returned yet')
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                cmd = _login(creds)
                try:
                    future.set_result(work(cmd, deadline))
                finally:
                    try:
                        cmd.ipmi_session.logout()
                    except Exception as exc:
                        LOG.debug('IPMI logout from %s failed: %s',
                                  creds.address, exc)
            except BaseException as exc:
                LOG.debug('IPMI call to %s failed', creds.address,
                          exc_info=True)
                if not future.done():
                    future.set_exception(exc)
            finally:
                lock.release()

        try:
            threading.Thread(target=run, name=f'ipmi-{host}',
                             daemon=True).start()
        except BaseException:
            lock.release()
            raise
        try:
            return future.result(max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            raise _TimedOut(f'no answer within {timeout:g} s') from None

    @staticmethod
    def _timed_out(exc: BaseException) -> bool:
        return isinstance(exc, _TimedOut) or (
            isinstance(exc, pyghmi_exc.IpmiException)
            and str(exc) in _NO_ANSWER)

    def _explain(self, host: str, exc: BaseException,
                 timeout: float) -> str:
        """Why a call failed, for a log or a result (no password)."""
        if isinstance(exc, _NoBmc):
            return (f'host {host} has no entry in {self.bmc_file} '
                    f'({bmcfile.OPTION}); add its BMC there')
        creds = self.bmcs[host]
        bmc = f'the BMC of host {host} ({creds.address} port {creds.port})'
        message = str(exc)
        if isinstance(exc, _TimedOut):
            return f'{bmc}: {message}'
        if self._timed_out(exc):
            return f'{bmc} did not answer'
        if 'password' in message.lower() or 'name' in message.lower():
            return (f'{bmc} refused the login of user {creds.username!r}: '
                    f'{message}; check the username and password in '
                    f'{self.bmc_file}')
        if isinstance(exc, pyghmi_exc.IpmiException):
            return f'{bmc} refused: {message}'
        return f'{bmc}: {type(exc).__name__}: {message}'


def _login(creds: bmcfile.BmcCredentials) -> ipmi_command.Command:
    """A logged-in session with a BMC.

    pyghmi's own state sometimes trips over the remains of the session
    before (a KeyError on its handler table): that is tried once more.
    """
    for attempt in (1, 2):
        _forget_broken_sessions()
        try:
            return ipmi_command.Command(
                bmc=creds.address, userid=creds.username,
                password=creds.password, port=creds.port)
        except (KeyError, AttributeError, TypeError):
            if attempt == 2:
                raise
            LOG.debug('pyghmi failed to log in to %s; trying again',
                      creds.address, exc_info=True)
    raise AssertionError('unreachable')


def _power_off(cmd: ipmi_command.Command, deadline: float) -> str:
    """Power the host off unless it is off; the fence outcome."""
    if cmd.get_power()['powerstate'] == 'off':
        return base.ALREADY_OFF
    if time.monotonic() >= deadline:
        # The caller gave up already: a power off now could hit a host
        # that came back meanwhile.
        raise _TimedOut('the BMC answered too late')
    cmd.set_power('off', wait=False)
    while cmd.get_power()['powerstate'] != 'off':
        if time.monotonic() + POLL_INTERVAL >= deadline:
            raise _TimedOut('the BMC accepted the power off but the host '
                            'is still on')
        time.sleep(POLL_INTERVAL)
    return base.FENCED


_PATCH_LOCK = threading.Lock()
_patched = False


def _forget_broken_sessions() -> None:
    """Drop the broken sessions pyghmi would hand to the next login.

    pyghmi files a session being set up under its credentials and, as it
    removes it with differently typed keys, never forgets it: once that
    session breaks (a wrong password, a silent BMC, a logout), every later
    login with the same credentials gets it and fails.
    """
    with _PATCH_LOCK:
        pending = pyghmi_session.Session.initting_sessions
        for key, session in list(pending.items()):
            if getattr(session, 'broken', False):
                pending.pop(key, None)


def _close_wait_race() -> None:
    """Make pyghmi notice a reply that came before it waited for it.

    A synchronous pyghmi call sends its request, then waits to be told of
    a packet from the BMC's address; when the reply comes first (pyghmi's
    I/O thread has queued it already), nothing tells it, and it waits for
    its retry timer. The wait is cut to :data:`QUEUED_WAIT` then: the
    caller goes on to read its queue, as it does after any wait.
    """
    global _patched
    with _PATCH_LOCK:
        if _patched:
            return
        original = pyghmi_session._io_wait

        def io_wait(timeout: float, myaddr: typing.Any = None,
                    evq: typing.Any = None) -> None:
            # Only a reply's waiter (no event queue): another command's
            # waiter must keep waiting for its turn.
            if (myaddr is not None and evq is None
                    and _reply_queued(myaddr)):
                timeout = min(timeout, QUEUED_WAIT)
            original(timeout, myaddr, evq)

        pyghmi_session._io_wait = io_wait
        _patched = True


def _reply_queued(sockaddr: typing.Any) -> bool:
    for session in list(pyghmi_session.sessionqueue):
        if any(packet[1] == sockaddr
               for packet in list(getattr(session, 'pktqueue', ()))):
            return True
    return False
