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

"""Test doubles for doctor_plugin and for plugins written against it.

Real local servers, not mocks, for what a test cannot run on its own
machine: each listens on 127.0.0.1 (port 0 picks a free port), speaks the
real service's wire format, records what it was sent and can misbehave
on demand. This package is public, as oslo.messaging ships its
``conffixture``: a plugin author uses it in the plugin's own tests.

:mod:`doctor_plugin.testing.nova`
    Nova's compute API (services, servers, microversions, versioned
    notifications), for the controller and the topology.
:mod:`doctor_plugin.testing.keystone`
    Keystone's identity API v3, as keystonemiddleware validates tokens.
:mod:`doctor_plugin.testing.consumer`
    A tenant's alarm webhook receiver (a VNF manager), in this process or
    in one of its own.
:mod:`doctor_plugin.testing.childproc`
    Runs such a server in a Python process of its own.
:mod:`doctor_plugin.testing.broker`
    Deletes the queues a run left on a shared RabbitMQ broker.
:mod:`doctor_plugin.testing.chain`
    The whole chain (inspector, bus, alarms, consumer, Nova) put together,
    as the demo, the benchmark and the functional tests run it.
:mod:`doctor_plugin.testing.netns`
    Machines in network namespaces, joined by one bridge per network
    plane, whose links a test sets down or makes lossy (needs root).

The services never import this package (a unit test checks it); it
needs nothing beyond the runtime's requirements.
"""
