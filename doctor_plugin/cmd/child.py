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

"""``python -m doctor_plugin.cmd.child MODULE [ARG...]``: run a module.

The helper processes that do not have a console script of their own
(the chain's alarm listener, the Nova stand-in, the webhook receiver, the
bench's heartbeat senders and B7's load process) run through this: like
every command it is in :mod:`doctor_plugin.cmd`, whose import chooses
oslo.service's threading backend before MODULE, which imports
oslo.messaging, is imported. A plain ``python -m MODULE`` would import
the module's package (``doctor_plugin.testing.nova`` imports
oslo.messaging) before any line of MODULE could choose it.
"""

from __future__ import annotations

import runpy
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith('-'):
        sys.exit('usage: python -m doctor_plugin.cmd.child MODULE [ARG...]')
    # MODULE sees itself as __main__ with its own arguments, as with -m.
    sys.argv = [args[0], *args[1:]]
    runpy.run_module(args[0], run_name='__main__', alter_sys=True)


if __name__ == '__main__':
    main()
