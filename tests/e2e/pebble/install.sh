#!/usr/bin/env bash
# Installs Pebble, Let's Encrypt's ACME (RFC 8555) test server, from Debian's package `pebble`
# (2.4.0 on bookworm): the CA that the ACME tests of `mtasts serve` issue from, through
# mtasts_testnet::pebble, which starts its own instance per test on loopback with its own
# configuration, API certificate and DNS server. The package ships no service today; should a
# future one add pebble.service, it is neither started nor left enabled (it would hold ports
# 14000/15000). See tests/e2e/lib/install-server.sh for the rules.
set -euo pipefail
exec "$(dirname "$0")/../lib/install-server.sh" pebble /usr/bin/pebble pebble.service
