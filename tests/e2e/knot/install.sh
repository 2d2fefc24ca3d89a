#!/usr/bin/env bash
# Installs what the RFC 2136 dynamic-update tests (crates/server/tests/it/dnsupdate.rs, through
# mtasts_testnet::knot) need, from Debian's packages: knot, the authoritative server knotd. The
# tests run their own knotd with its own configuration, zone files and state in a temporary
# directory on loopback; the system knot.service (it would bind port 53) is neither started nor
# left enabled. See tests/e2e/lib/install-server.sh for the rules (idempotent, loud without root).
set -euo pipefail
exec "$(dirname "$0")/../lib/install-server.sh" knot /usr/sbin/knotd knot.service
