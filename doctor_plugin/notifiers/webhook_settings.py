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

"""What one webhook URL means: where to POST, how long, how to verify.

The ``[notifier]`` options (:mod:`doctor_plugin.notifiers.webhook_opts`)
with the URL's ``doctor-`` parameters (``doctor-ssl-verify=false``,
``doctor-timeout=2``, as Aodh's ``aodh-alarm-ssl-verify``) over them.
Proxies come from the environment (:mod:`doctor_plugin.common.http`).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from urllib import parse as urlparse

from oslo_utils import strutils

from doctor_plugin.common import http
from doctor_plugin import exceptions
from doctor_plugin.notifiers import webhook_opts


@dataclasses.dataclass(frozen=True, slots=True)
class TargetSettings:
    """One webhook target, validated.

    :ivar target_url: the URL as posted: without doctor-* parameters or
        fragment
    :ivar safe_url: for logs and errors: no userinfo, no query
    :ivar stable_url: without userinfo (what a proxy is asked for, and
        what names synthesised alarms: rotating credentials keeps their
        ids)
    :ivar tls: for https://, how to verify the consumer
    """

    target_url: str
    safe_url: str
    stable_url: str
    timeout: float
    tls: http.TLSSettings | None

    @classmethod
    def from_url(cls, url: str, opts: typing.Any) -> TargetSettings:
        """Settings of ``url`` under the ``[notifier]`` options ``opts``.

        :raises ConfigurationError: naming the URL or the option at fault
        """
        parsed = urlparse.urlsplit(url)
        netloc = parsed.netloc.rpartition('@')[2]
        safe_url = urlparse.urlunsplit((parsed.scheme, netloc, parsed.path,
                                        '', ''))
        if not parsed.hostname:
            raise exceptions.ConfigurationError(
                'notifier URL', safe_url,
                'has no host; write it as https://host[:port]/path')
        overrides = _url_overrides(parsed.query, safe_url)
        target_url = urlparse.urlunsplit(parsed._replace(
            query=_strip_doctor_params(parsed.query), fragment=''))
        target = urlparse.urlsplit(target_url)
        stable_url = urlparse.urlunsplit(target._replace(
            netloc=target.netloc.rpartition('@')[2]))
        timeout = _parse_timeout(overrides.get('timeout'),
                                 opts.webhook_timeout, safe_url)
        tls = None
        if parsed.scheme == 'https':
            tls = _tls(opts, overrides.get('ssl-verify'), safe_url)
        return cls(target_url, safe_url, stable_url, timeout, tls)


def _url_overrides(query: str, safe_url: str) -> dict[str, str]:
    overrides = {}
    prefix = webhook_opts.URL_PARAM_PREFIX
    for name, value in urlparse.parse_qsl(query, keep_blank_values=True):
        if not name.startswith(prefix):
            continue
        key = name[len(prefix):]
        if key not in webhook_opts.URL_PARAMS:
            raise exceptions.ConfigurationError(
                'notifier URL', safe_url,
                f'unknown parameter {name!r}; the doctor- parameters '
                f'are ' + ', '.join(prefix + p
                                    for p in webhook_opts.URL_PARAMS))
        overrides[key] = value
    return overrides


def _parse_timeout(value: str | None, default: float,
                   safe_url: str) -> float:
    if value is None:
        return default
    try:
        timeout = float(value)
    except ValueError:
        timeout = -1.0
    if not 0.1 <= timeout < float('inf'):
        raise exceptions.ConfigurationError(
            'notifier URL', safe_url,
            f'doctor-timeout={value!r} is not a number of seconds of '
            f'at least 0.1')
    return timeout


def _tls(opts: typing.Any, verify_override: str | None,
         safe_url: str) -> http.TLSSettings:
    verify = opts.webhook_ssl_verify
    if verify_override is not None:
        try:
            verify = strutils.bool_from_string(verify_override, strict=True)
        except ValueError:
            raise exceptions.ConfigurationError(
                'notifier URL', safe_url,
                f'doctor-ssl-verify={verify_override!r} is not a '
                f'boolean; write true or false') from None
    if verify and opts.webhook_ca_bundle:
        verify = _existing_file('webhook_ca_bundle', opts.webhook_ca_bundle)
    if opts.webhook_client_key and not opts.webhook_client_cert:
        raise exceptions.ConfigurationError(
            '[notifier] webhook_client_key', opts.webhook_client_key,
            'is set without webhook_client_cert; set the certificate '
            'too, or unset the key')
    cert: str | tuple[str, str] | None = None
    if opts.webhook_client_cert:
        cert = _existing_file('webhook_client_cert',
                              opts.webhook_client_cert)
        if opts.webhook_client_key:
            cert = (cert, _existing_file('webhook_client_key',
                                         opts.webhook_client_key))
    return http.TLSSettings(verify, cert,
                            cert_option='[notifier] webhook_client_cert')


def _strip_doctor_params(query: str) -> str:
    # Filter the raw pairs so the kept ones are sent exactly as written.
    return '&'.join(
        pair for pair in query.split('&')
        if pair and not urlparse.unquote_plus(
            pair.partition('=')[0]).startswith(
                webhook_opts.URL_PARAM_PREFIX))


def _existing_file(option: str, path: str) -> str:
    if not os.path.isfile(path):
        raise exceptions.ConfigurationError(
            f'[notifier] {option}', path,
            'no such file; fix the path or unset the option')
    return path
