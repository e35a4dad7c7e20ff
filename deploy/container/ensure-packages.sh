#!/bin/sh
# ensure-packages.sh PACKAGE... — install the Debian packages of the list that the image does not
# have yet, then drop apt's lists. On debian:bookworm-slim it installs them all (network needed);
# on a base that already holds them (tests/integration/test_container.py imports a debootstrapped
# root file system with every package included) it does nothing, so the build needs no network.
set -eu
missing=""
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "ensure-packages: all of $* already installed"
	exit 0
fi
echo "ensure-packages: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # one word per package
apt-get install -y -q --no-install-recommends $missing
apt-get clean
rm -rf /var/lib/apt/lists/*
