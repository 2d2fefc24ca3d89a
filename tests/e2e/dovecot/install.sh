#!/usr/bin/env bash
# Installs what the IMAP importer's tests (`mtasts report imap`, through
# mtasts_testnet::dovecot) need, from Debian's packages: dovecot-imapd (and with it dovecot-core,
# the `dovecot` master process). The tests run their own Dovecot with its own configuration,
# passwd-file, certificate, maildirs and state in a temporary directory on a loopback address;
# the system dovecot.service (it would bind ports 143 and 993) is neither started nor left
# enabled. See tests/e2e/lib/install-server.sh for the rules (idempotent, loud without root).
set -euo pipefail
exec "$(dirname "$0")/../lib/install-server.sh" dovecot-imapd /usr/lib/dovecot/imap dovecot.service
