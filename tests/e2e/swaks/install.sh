#!/usr/bin/env bash
# Installs what the SMTP intake tests (crates/cli/tests/smtp_intake.rs) need from Debian's
# packages: swaks, the SMTP client that sends report mail to our receiver, and Net::SSLeay
# (libnet-ssleay-perl), which swaks needs for STARTTLS. Idempotent and fast when both are
# there; when not root it says so loudly and exits 0 (the tests then SKIP, and fail when
# CI=true). No service is involved.
set -euo pipefail
have() { command -v swaks >/dev/null 2>&1 && perl -MNet::SSLeay -e1 2>/dev/null; }
if have; then
  echo "swaks: present ($(dpkg-query -W -f='${Version}' swaks 2>/dev/null || echo '?'))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "!!! swaks: NOT ROOT, cannot install swaks: the SMTP intake tests will be SKIPPED !!!" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends swaks libnet-ssleay-perl; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends swaks libnet-ssleay-perl
fi
echo "swaks: installed $(dpkg-query -W -f='${Version}' swaks)"
