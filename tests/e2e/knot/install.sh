#!/usr/bin/env bash
# Installs what the RFC 2136 dynamic-update tests (crates/server/tests/it/dnsupdate.rs, through
# mtasts_testnet::knot) need, from Debian's packages: knot, the authoritative server knotd. The
# tests run their own knotd with its own configuration, zone files and state in a temporary
# directory on 127.0.0.1; the system service is neither wanted nor left running.
#
# Idempotent and fast when knotd is there already (no apt call at all). Needs root; when not root
# it says so loudly and exits 0, so a developer's .ci/run still works (the tests then SKIP, unless
# CI=true, where a missing knotd fails them).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

knotd=/usr/sbin/knotd
if [ -x "$knotd" ]; then
  echo "knot: knotd present ($("$knotd" --version 2>/dev/null | head -n1 || echo '?'))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "!!! knot: NOT ROOT, cannot install knot: the dynamic-update tests against knotd will be SKIPPED !!!" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Do not let the package's maintainer scripts start the system-wide knot.service (it would bind
# port 53 on a host with an init system); the tests start their own knotd. Only for this
# install, removed afterwards.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi' EXIT

if ! apt-get install -y -q --no-install-recommends knot; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends knot
fi
# Belt and braces for hosts where policy-rc.d is not consulted (systemd with a preset that
# enables and starts the unit): stop and disable the system service if it is running.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now knot.service >/dev/null 2>&1 || true
fi
echo "knot: installed; $("$knotd" --version | head -n1)"
