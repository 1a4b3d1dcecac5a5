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

"""A test's configuration, with every option of doctor_plugin registered.

Our library code never registers options: :func:`doctor_plugin.opts.
register_all` does, once, when a command starts. A test (ours, or a
plugin author's constructing a notifier, transformer or monitor next to
ours) gets a configuration made the same way from :class:`ConfFixture`::

    conf = self.useFixture(config.ConfFixture()).conf
    notifier = webhook.WebhookNotifier(conf, 'http://127.0.0.1:8080/')

Overrides made through the fixture's ``config()`` are undone at clean-up,
as with :class:`oslo_config.fixture.Config`, which it extends.
"""

from __future__ import annotations

from oslo_config import cfg
from oslo_config import fixture

from doctor_plugin import opts


class ConfFixture(fixture.Config):
    """A configuration as our services have it: every option, no file.

    At set-up every option :func:`~doctor_plugin.opts.register_all`
    registers is registered on the configuration and an empty command line
    is parsed (no configuration file or directory is looked for), with the
    defaults validated as the services validate them.

    :param conf: the configuration to use; a new one when None
    """

    def __init__(self, conf: cfg.ConfigOpts | None = None) -> None:
        super().__init__(conf if conf is not None else cfg.ConfigOpts())

    def setUp(self) -> None:
        super().setUp()
        opts.register_all(self.conf)
        self.conf([], project='doctor_plugin', default_config_files=[],
                  default_config_dirs=[], validate_default_values=True)
