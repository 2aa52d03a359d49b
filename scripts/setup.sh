#!/usr/bin/env bash
# Set up a fresh machine for dvc-bus: RabbitMQ installed and running, a virtualenv with the
# project and its test tools. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

AMQP_PORT=${DVCBUS_AMQP_PORT:-5672}
PYTHON=${PYTHON:-python3}

say() { printf '[setup] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# 1. RabbitMQ (Debian package), started if it is not running.
if ! port_open "$AMQP_PORT"; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    say "installing rabbitmq-server from the Debian packages"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  say "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do port_open "$AMQP_PORT" && break; sleep 1; done
  port_open "$AMQP_PORT" || { say "RabbitMQ did not start on port $AMQP_PORT"; exit 1; }
  rabbitmqctl await_startup >/dev/null 2>&1 || true
fi
# PostgreSQL (the second store the tests prove): installed from the Debian packages if
# missing, started if stopped, and a database `test` that user postgres reaches over TCP
# without a password (tests/integration/store_fixtures.py; DVCBUS_TEST_PG_URL overrides it).
if [ -z "${DVCBUS_TEST_PG_URL:-}" ]; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! port_open 5432; then
    say "installing postgresql from the Debian packages"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fi
  if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
    say "starting PostgreSQL"
    for version in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    done
    for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done
  fi
  if ! psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
    say "preparing PostgreSQL for the tests: database test, trusted local logins"
    as_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$*"; else sudo -u postgres sh -c "$*"; fi; }
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      [ -f "$hba" ] || continue
      grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba" || {
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        as_pg "psql -Atc 'select pg_reload_conf()'" >/dev/null
      }
    done
    as_pg "psql -Atc \"select 1 from pg_database where datname='test'\"" | grep -q 1 \
      || as_pg "createdb test"
  fi
fi
# The management API: the bus reads broker policies through it before starting.
if ! port_open 15672; then
  say "enabling the RabbitMQ management plugin"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  for _ in $(seq 1 60); do port_open 15672 && break; sleep 1; done
fi

# 2. Python virtualenv with the project (editable) and its test tools.
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  say "Python 3.11 or newer is required ($PYTHON is $("$PYTHON" --version))"; exit 1; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.dvcbus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing dvc-bus and its dependencies into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
  touch "$stamp"
fi

# 3. promtool (Debian package prometheus): the tests check the shipped alert rules with it,
#    and scripts/render_dashboard.py starts a Prometheus of its own on a free port.
if ! command -v promtool >/dev/null 2>&1; then
  say "installing prometheus (for promtool) from the Debian packages"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
