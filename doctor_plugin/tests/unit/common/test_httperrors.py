"""Tests for doctor_plugin.common.httperrors."""

import socket

import urllib3
from urllib3 import exceptions as urllib3_exc

from doctor_plugin.common import httperrors
from doctor_plugin.tests import base


class TestDescribe(base.TestCase):

    def test_refused_connection_without_the_connection_repr(self):
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        exc = self.assertRaises(
            urllib3_exc.HTTPError, urllib3.PoolManager(retries=False).request,
            'GET', f'http://127.0.0.1:{port}/')
        text = httperrors.describe(exc, 2.0)
        self.assertTrue(text.startswith('ConnectionError: Failed to '
                                        'establish a new connection'), text)
        self.assertIn('Connection refused', text)
        self.assertNotIn('HTTPConnection(', text)

    def test_timeouts_say_which_and_how_long(self):
        read = urllib3_exc.ReadTimeoutError(None, '/x', 'read timed out')
        connect = urllib3_exc.ConnectTimeoutError('timed out')
        self.assertEqual('no response within 2.0s',
                         httperrors.describe(read, 2.0))
        self.assertEqual('no connection within 0.5s',
                         httperrors.describe(connect, 0.5))

    def test_the_reason_of_a_max_retry_error_is_named(self):
        exc = urllib3_exc.MaxRetryError(
            None, '/x?token=secret', urllib3_exc.SSLError('bad cert'))
        self.assertEqual('SSLError', httperrors.error_name(exc))
        self.assertNotIn('secret', httperrors.describe(exc, 1.0))
