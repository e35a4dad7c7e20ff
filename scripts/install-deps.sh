#!/usr/bin/env bash
# Install everything pgha needs to build, run and test on Debian bookworm.
# Idempotent: does nothing when every package is already there.
#   --bench  also install what bench/failover.py needs to run Patroni side by
#            side, and bench/proxy.py PgBouncer and HAProxy (the build and the
#            test suite do not need these).
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
  libcurl4-openssl-dev libjansson-dev libssl-dev
  libcmocka-dev
  clang libclang-rt-14-dev
  python3 python3-pytest python3-psycopg
  iproute2 procps openssl
)

# Patroni 3.0 from bookworm; its etcd3 DCS module imports python3-etcd (the
# python3-etcd3 gRPC client is not used). PgBouncer and HAProxy: bench/proxy.py.
BENCH_PACKAGES=(
  patroni python3-etcd python3-yaml
  pgbouncer haproxy
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

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian's postgresql package creates and may start a default cluster; pgha does not use it.
if command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 main .* online'; then
  $SUDO pg_ctlcluster 15 main stop || true
fi
