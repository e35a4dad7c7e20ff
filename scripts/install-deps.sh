#!/usr/bin/env bash
# Install everything pgha needs to build, run and test on Debian bookworm (prometheus:
# promtool tests the alert rules, and a real server scrapes a cluster in the tests;
# chromium and python3-websocket: a real browser drives the dashboard in the tests; a JDK and
# pgJDBC: the proxy's driver tests; podman with runc and netavark/aardvark-dns, debootstrap and
# python3-yaml: tests/integration/test_container.py builds the image and runs the stack).
# Idempotent: does nothing when every package is already there. Besides Debian's
# packages: an S3-compatible server from npm for the S3 backup test, and node-postgres for
# the proxy's driver tests, under /opt/pgha-test-node (PGHA_S3_SERVER_DIR).
#   --bench  also install what bench/failover.py needs to run Patroni side by
#            side, bench/proxy.py PgBouncer and HAProxy, bench/rw_split.py
#            Pgpool-II (the build and the test suite do not need these).
set -euo pipefail

bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    *) echo "usage: $0 [--bench]" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  gcc make pkg-config
  postgresql-15 postgresql-client-15 libpq-dev pgbackrest
  etcd-server etcd-client
  libcurl4-openssl-dev libjansson-dev libssl-dev libpg-query-dev libicu-dev
  libcmocka-dev
  clang libclang-rt-14-dev
  python3 python3-pytest python3-psycopg
  default-jdk-headless libpostgresql-jdbc-java
  iproute2 procps openssl systemd tcpdump curl
  prometheus chromium python3-websocket
  podman runc netavark aardvark-dns debootstrap python3-yaml
)

# Patroni 3.0 from bookworm; its etcd3 DCS module imports python3-etcd (the
# python3-etcd3 gRPC client is not used). PgBouncer and HAProxy: bench/proxy.py.
# postgres_exporter: bench/metrics.py. Pgpool-II: bench/rw_split.py.
BENCH_PACKAGES=(
  patroni python3-etcd
  pgbouncer haproxy pgpool2
  prometheus-postgres-exporter
)
if [ "$bench" -eq 1 ]; then
  PACKAGES+=("${BENCH_PACKAGES[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js and npm run the S3-compatible test server (below); Debian's when the machine has none.
if ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
  SUDO=sudo
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian's prometheus package may start a server on :9090; the tests start their own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl stop prometheus || true
    $SUDO systemctl disable prometheus >/dev/null 2>&1 || true
  fi
  # Debian's pgpool2 package may start a Pgpool-II on :5433; bench/rw_split.py starts its own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet pgpool2 2>/dev/null; then
    $SUDO systemctl stop pgpool2 || true
    $SUDO systemctl disable pgpool2 >/dev/null 2>&1 || true
  fi
  # Debian's postgresql package creates and may start a default cluster; pgha does not use it.
  if command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 main .* online'; then
    $SUDO pg_ctlcluster 15 main stop || true
  fi
fi

# The S3-compatible server tests/integration/test_backup_s3.py runs pgBackRest against
# (through tests/integration/s3_server.js): one exact version, in a directory of its own
# rather than npm's global one. 4.0.4 checks SigV4 signatures (so a wrong secret key is
# refused, as by real S3) and runs on Node.js 20; s3rver 3.7.1 checks only the key id.
S3_SERVER_DIR=${PGHA_S3_SERVER_DIR:-/opt/pgha-test-node}
S3_SERVER_VERSION=4.0.4
if ! grep -qs "\"version\": \"$S3_SERVER_VERSION\"" "$S3_SERVER_DIR/node_modules/@20minutes/s3rver/package.json"; then
  if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ] && ! mkdir -p "$S3_SERVER_DIR" 2>/dev/null; then
    echo "install-deps: cannot create $S3_SERVER_DIR for the S3 test server; run as root, or set" \
      "PGHA_S3_SERVER_DIR to a directory of yours (the tests read it too)" >&2
    exit 1
  fi
  echo "install-deps: installing @20minutes/s3rver@$S3_SERVER_VERSION into $S3_SERVER_DIR"
  $SUDO mkdir -p "$S3_SERVER_DIR"
  $SUDO npm install --prefix "$S3_SERVER_DIR" --save-exact --no-audit --no-fund --loglevel=error \
    "@20minutes/s3rver@$S3_SERVER_VERSION"
fi

# node-postgres for tests/integration/test_proxy_drivers.py (node_pg_client.js): one exact
# version, beside the S3 server.
NODE_PG_VERSION=8.16.3
if ! grep -qs "\"version\": \"$NODE_PG_VERSION\"" "$S3_SERVER_DIR/node_modules/pg/package.json"; then
  echo "install-deps: installing pg@$NODE_PG_VERSION into $S3_SERVER_DIR"
  $SUDO mkdir -p "$S3_SERVER_DIR"
  $SUDO npm install --prefix "$S3_SERVER_DIR" --save-exact --no-audit --no-fund --loglevel=error \
    "pg@$NODE_PG_VERSION"
fi
