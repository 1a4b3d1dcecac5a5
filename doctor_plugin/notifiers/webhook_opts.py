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

"""The ``[notifier]`` options of the webhook notifier and alarm action.

Per URL, ``doctor-`` query parameters override two of them
(:data:`URL_PARAMS`); they are not sent.
"""

from __future__ import annotations

from oslo_config import cfg

from doctor_plugin.notifiers import aodh_body

GROUP = 'notifier'

OPTS = [
    cfg.FloatOpt('webhook_timeout',
                 default=5.0,
                 min=0.1,
                 help='Seconds to wait for a webhook consumer to accept the '
                      'connection, and again for its response. Per URL: '
                      'doctor-timeout=2.'),
    cfg.IntOpt('webhook_max_retries',
               default=2,
               min=0,
               help='How many times to retry a webhook POST that could not '
                    'connect or got a 5xx answer, with a short backoff. '
                    'Consumers can drop duplicates by the X-Doctor-Event-Id '
                    'header. Timed-out responses are not retried.'),
    cfg.BoolOpt('webhook_ssl_verify',
                default=True,
                help='Whether to verify the certificate of https:// webhook '
                     'consumers. Per URL: doctor-ssl-verify=false.'),
    cfg.StrOpt('webhook_ca_bundle',
               help='Path of a CA bundle to verify https:// webhook '
                    'consumers with, instead of the system\'s.'),
    cfg.StrOpt('webhook_client_cert',
               help='Path of a client certificate (PEM) to present to '
                    'https:// webhook consumers; it may hold the key too.'),
    cfg.StrOpt('webhook_client_key',
               help='Path of the private key of webhook_client_cert, when '
                    'the certificate file does not hold it.'),
    cfg.IntOpt('webhook_pool_size',
               default=10,
               min=1,
               help='Connections each webhook notifier keeps open to its '
                    'consumer, i.e. how many POSTs can run in parallel '
                    'without opening new connections.'),
    cfg.StrOpt('webhook_signing_key',
               secret=True,
               help='Key to sign webhook bodies with (HMAC-SHA256). Each '
                    'POST then carries X-Doctor-Timestamp (Unix seconds) '
                    'and X-Doctor-Signature: sha256=<hex of HMAC(key, '
                    'timestamp + "." + body)>, so a consumer can reject '
                    'forged, altered and replayed alarms. Empty: not '
                    'signed.'),
    cfg.StrOpt('default_severity',
               default='critical',
               choices=aodh_body.SEVERITIES,
               help='Severity of alarms synthesised from events whose '
                    '"severity" trait is not one of Aodh\'s.'),
]

#: The per-URL parameters, by name without the ``doctor-`` prefix.
URL_PARAMS = ('ssl-verify', 'timeout')
URL_PARAM_PREFIX = 'doctor-'
