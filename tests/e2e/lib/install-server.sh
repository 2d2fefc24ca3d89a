#!/usr/bin/env bash
# Installs one Debian package holding a server that the tests start themselves (their own
# configuration, state and ports), and makes sure no system-wide copy of it runs:
#
#   install-server.sh PACKAGE BINARY [SERVICE]
#
# - Idempotent and fast when BINARY is there already (no apt call at all).
# - Needs root; when not root it says so loudly and exits 0, so a developer's .ci/run still
#   works (the tests then SKIP, and fail when CI=true).
# - A policy-rc.d guard stops the package's maintainer scripts from starting SERVICE during the
#   install; afterwards SERVICE is disabled and stopped where systemd runs (a preset may enable
#   a unit that policy-rc.d does not cover).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

package=$1
binary=$2
service=${3:-}

version() { dpkg-query -W -f='${Version}' "$package" 2>/dev/null || echo '?'; }

if [ -x "$binary" ]; then
  echo "$package: present ($(version))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "!!! $package: NOT ROOT, cannot install $package: the tests that need $binary will be SKIPPED !!!" >&2
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

if ! apt-get install -y -q --no-install-recommends "$package"; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "$package"
fi
if [ -n "$service" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now "$service" >/dev/null 2>&1 || true
fi
echo "$package: installed $(version)"
