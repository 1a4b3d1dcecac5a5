#!/bin/bash
# Start the local services the functional tests use (RabbitMQ, PostgreSQL,
# Redis) when they are not answering on loopback, and wait until they do.
# CI runs this before the tests; on a developer's machine it is harmless
# when they already run. Exits non-zero, naming the service, if one does
# not come up.
set -u

port_open() {
    python3 - "$1" <<'PY'
import socket
import sys
try:
    socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()
except OSError:
    sys.exit(1)
PY
}

start() {
    local name=$1 port=$2
    shift 2
    if port_open "$port"; then
        return 0
    fi
    echo "start-services: $name is not answering on 127.0.0.1:$port; starting it"
    "$@" >/dev/null 2>&1 || true
    for _ in $(seq 1 120); do
        if port_open "$port"; then
            echo "start-services: $name is up"
            return 0
        fi
        sleep 0.5
    done
    echo "start-services: $name did not come up on 127.0.0.1:$port;" \
         "start it by hand (see doc/source/contributor/testing.rst)" >&2
    return 1
}

rc=0
start RabbitMQ 5672 rabbitmq-server -detached || rc=1
start PostgreSQL 5432 bash -c \
    'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' \
    || rc=1
start Redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 \
    --port 6379 --save "" --appendonly no --dir /var/lib/redis \
    --logfile /var/log/redis/ci.log || rc=1
exit $rc
