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

The services never import this package (a unit test checks it); it
needs nothing beyond the runtime's requirements.
"""
