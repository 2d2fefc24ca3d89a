#!/usr/bin/env bash
# Installs what the Postfix end-to-end test (tests/e2e/postfix/run.sh) needs, from Debian's
# packages: postfix (the real MTA, left unconfigured and not started: the test runs its own
# instance with its own config directory inside a private network namespace), util-linux
# (unshare, mount), iproute2 (ip, to bring up loopback in the namespace) and procps.
#
# Idempotent and fast when everything is there already (no apt call at all). Needs root; when
# not root it says so loudly and exits 0, so a developer's .ci/run still works (the e2e step
# then skips too).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

need=()
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || need+=(postfix)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ps >/dev/null 2>&1 || need+=(procps)

if [ ${#need[@]} -eq 0 ]; then
  echo "postfix e2e: dependencies present ($(/usr/sbin/postconf -d -h mail_version 2>/dev/null || echo '?'))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "!!! postfix e2e: NOT ROOT, cannot install ${need[*]}: the Postfix end-to-end test will be SKIPPED !!!" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# "No configuration": the package installs binaries only, writes no main.cf and starts nothing.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Do not let the package's maintainer scripts start a system-wide Postfix (on a host with an init
# system); the test starts its own instance. Only for this install, removed afterwards.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi' EXIT

if ! apt-get install -y -q --no-install-recommends "${need[@]}"; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi
echo "postfix e2e: installed ${need[*]}; Postfix $(/usr/sbin/postconf -d -h mail_version)"
