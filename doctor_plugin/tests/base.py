"""Base classes for doctor_plugin's tests."""

from oslo_config import cfg
from oslotest import base

from doctor_plugin import profiler


class TestCase(base.BaseTestCase):
    """A test with its own configuration object and profiler timeline."""

    def setUp(self) -> None:
        super().setUp()
        self.conf = cfg.ConfigOpts()
        self.conf([], project='doctor_plugin')
        self.timeline = profiler.Timeline()

    def set_opts(self, group: str | None = None, **overrides) -> None:
        """Override registered options for the length of the test."""
        for name, value in overrides.items():
            self.conf.set_override(name, value, group=group)
            self.addCleanup(self.conf.clear_override, name, group=group)
