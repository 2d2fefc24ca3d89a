#!/usr/bin/env bash
# Installs Pebble, Let's Encrypt's ACME (RFC 8555) test server, from Debian's package `pebble`
# (2.4.0 on bookworm): the CA that the ACME tests of `mtasts serve` and the ACME benchmark
# issue from, through mtasts_testnet::pebble, which starts its own instance per test on
# loopback with its own configuration, API certificate and DNS server.
#
# The package ships no service (no systemd unit, no init script); a policy-rc.d guard is still
# in place during the install so that no maintainer script can start anything, and afterwards
# any system-wide pebble service is stopped and disabled just in case a future package adds one.
#
# Idempotent and fast when /usr/bin/pebble is there already (no apt call at all). Needs root;
# when not root it says so loudly and exits 0, so a developer's .ci/run still works (the Pebble
# tests then skip loudly, and fail when CI=true).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

if [ -x /usr/bin/pebble ]; then
  echo "pebble: present ($(dpkg-query -W -f='${Version}' pebble 2>/dev/null || echo '?'))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "!!! pebble: NOT ROOT, cannot install pebble: the ACME tests against Pebble will be SKIPPED !!!" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi' EXIT

if ! apt-get install -y -q --no-install-recommends pebble; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends pebble
fi
# The tests start their own Pebble; none may run system-wide (it would hold ports 14000/15000).
if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files pebble.service >/dev/null 2>&1; then
  systemctl disable --now pebble.service >/dev/null 2>&1 || true
fi
echo "pebble: installed $(dpkg-query -W -f='${Version}' pebble)"
