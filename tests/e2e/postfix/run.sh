#!/usr/bin/env bash
# End-to-end test: a real Postfix (Debian's package, see install.sh) delivers through
# `mtasts resolver` to MX hosts of the test internet, inside a private network and mount namespace
# that has only loopback (so nothing outside the machine can be reached, and ports 53/25/443 are
# free). See docs/resolver.md, "End-to-end test with Postfix".
#
#   tests/e2e/postfix/run.sh            # as root; builds mtasts and testnet-serve (debug)
#
# Environment: MTASTS_BIN and TESTNET_SERVE (use these binaries instead of building),
# CARGO_TARGET_DIR (where cargo builds), KEEP=1 (keep the work directory), CI=true (fail instead
# of skipping when root, postfix or unshare is missing).
#
# Three domains, each with an `enforce` MTA-STS policy naming its MX host:
#   good.test        MX with a valid certificate       -> delivered over verified TLS
#   nostarttls.test  MX without STARTTLS                -> deferred, stays in the queue
#   wrongcert.test   MX with a certificate for another name -> deferred, stays in the queue
# The two bad MX hosts would accept the mail (in plaintext, or over TLS without checks): only
# the policy the resolver hands Postfix keeps it away from them.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)

skip() {
  if [ "${CI:-}" = "true" ]; then
    echo "postfix e2e: FAILED: cannot run in CI: $*" >&2
    exit 1
  fi
  {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!! postfix e2e: SKIPPED: $*"
    echo "!!! (run tests/e2e/postfix/install.sh as root, then this script as root)"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  } >&2
  exit 0
}

if [ "${1:-}" != "--inside" ]; then
  [ "$(id -u)" -eq 0 ] || skip "not root (unshare, ports 25/53/443 and Postfix need it)"
  [ -x /usr/sbin/postfix ] || skip "Debian's postfix is not installed"
  command -v unshare >/dev/null 2>&1 || skip "unshare (util-linux) is not installed"
  command -v ip >/dev/null 2>&1 || skip "ip (iproute2) is not installed"
  unshare --net --mount true 2>/dev/null || skip "unshare --net --mount is not permitted here"
  if [ -z "${MTASTS_BIN:-}" ] || [ -z "${TESTNET_SERVE:-}" ]; then
    (cd "$root" && cargo build --quiet --locked -p mtasts -p mtasts-testnet --bin mtasts --bin testnet-serve)
    target="${CARGO_TARGET_DIR:-$root/target}/debug"
    export MTASTS_BIN="${MTASTS_BIN:-$target/mtasts}" TESTNET_SERVE="${TESTNET_SERVE:-$target/testnet-serve}"
  fi
  # The whole run is bounded; the namespace dies with its last process.
  exec timeout --kill-after=10 300 unshare --net --mount --propagation private -- bash "$0" --inside
fi

# ---------------------------------------------------------------- inside the namespace
ip link set lo up
links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[ "$links" = "lo " ] || { echo "postfix e2e: refusing to run: interfaces '$links', expected only lo" >&2; exit 1; }

work=$(mktemp -d /tmp/mtasts-postfix-e2e.XXXXXX)
chmod 755 "$work"
cfg=$work/postfix   # config directory
net=$work/net       # testnet-serve's directory
log=$work/maillog   # Postfix's log (maillog_file)
resolver_pid="" testnet_pid="" ok=0

cleanup() {
  set +e
  if [ -f "$cfg/main.cf" ]; then
    timeout 20 postfix -c "$cfg" stop >/dev/null 2>&1
    if [ -f "$work/queue/pid/master.pid" ]; then
      master=$(tr -d ' ' <"$work/queue/pid/master.pid")
      [ -n "$master" ] && kill -0 "$master" 2>/dev/null && kill -9 "$master"
    fi
  fi
  [ -n "$resolver_pid" ] && kill "$resolver_pid" 2>/dev/null
  exec 3>&- 2>/dev/null # closing testnet-serve's standard input stops it
  [ -n "$testnet_pid" ] && { timeout 10 tail --pid="$testnet_pid" -f /dev/null || kill -9 "$testnet_pid"; } 2>/dev/null
  [ -n "$resolver_pid" ] && { timeout 10 tail --pid="$resolver_pid" -f /dev/null || kill -9 "$resolver_pid"; } 2>/dev/null
  if [ "$ok" != 1 ]; then
    echo "---- Postfix log ($log)"; cat "$log" 2>/dev/null
    echo "---- resolver log"; tail -n 50 "$work/resolver.log" 2>/dev/null
    echo "---- testnet log"; tail -n 20 "$work/testnet.log" 2>/dev/null
  fi
  if [ "${KEEP:-}" = 1 ]; then echo "postfix e2e: work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

fail() { echo "postfix e2e: FAILED: $*" >&2; exit 1; }
# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds or the time is up.
wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${secs}s"
    sleep 0.2
  done
}
port_open() { (exec 9<>"/dev/tcp/$1/$2") 2>/dev/null; }

# 1. The test internet: DNS on 127.26.0.53:53, MX hosts on :25, policy hosts on :443.
mkfifo "$work/testnet.stdin"
"$TESTNET_SERVE" --mail "$net" <"$work/testnet.stdin" 2>"$work/testnet.log" &
testnet_pid=$!
exec 3>"$work/testnet.stdin"
wait_for 30 "testnet-serve ready" test -f "$net/ready"
nameserver=$(sed -n 's/^NAMESERVER=\(.*\):53$/\1/p' "$net/env")
[ -n "$nameserver" ] || fail "no NAMESERVER in $net/env"

# Only this namespace sees the new resolv.conf (the mount namespace is private).
printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$nameserver" >"$work/resolv.conf"
mount --bind "$work/resolv.conf" /etc/resolv.conf
printf '127.0.0.1 localhost\n127.0.0.1 sender.e2e.test\n' >"$work/hosts"
mount --bind "$work/hosts" /etc/hosts

# 2. The resolver, rendering answers for the Postfix that is installed.
version=$(postconf -d -h mail_version)
"$MTASTS_BIN" resolver --listen 127.0.0.1:8461 --nameserver "$nameserver" --ca-file "$net/root.pem" \
  --cache memory --postfix-version "$version" 2>"$work/resolver.log" &
resolver_pid=$!
wait_for 20 "resolver listening on 127.0.0.1:8461" port_open 127.0.0.1 8461

# 3. A Postfix instance of our own: its own config, queue and log; no chroot (it must read this
# namespace's resolv.conf); no SMTP listener (it only sends).
mkdir -p "$cfg" "$work/queue" "$work/data"
chown postfix "$work/data"
cat >"$cfg/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $work/queue
data_directory = $work/data
myhostname = sender.e2e.test
mydomain = e2e.test
myorigin = \$myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost =
alias_maps =
alias_database =
local_transport = error:local delivery is disabled
maillog_file = $log
maillog_file_prefixes = $work
smtp_host_lookup = dns
smtp_tls_security_level = may
smtp_tls_CAfile = $net/root.pem
smtp_tls_loglevel = 1
smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix
smtp_connect_timeout = 10s
smtp_helo_timeout = 20s
EOF
# Debian's master.cf, with chroot off for every service and without the smtpd listener.
awk '/^smtp[ \t]+inet/ { next }
     /^[a-z]/ && NF >= 8 { $5 = "n" }
     { print }' /etc/postfix/master.cf >"$cfg/master.cf"
postfix -c "$cfg" check || fail "postfix check"
postfix -c "$cfg" start || fail "postfix start"
wait_for 20 "Postfix started (log $log)" grep -q "daemon started" "$log"

# 4. One message to each domain (the resolver has nothing cached yet: Postfix's lookups are misses).
token=$(date +%s%N)
for d in good.test nostarttls.test wrongcert.test; do
  printf 'From: sender@e2e.test\nTo: user@%s\nSubject: e2e %s %s\n\nHello %s.\n.leading dot\n' \
    "$d" "$d" "$token" "$d" |
    timeout 30 sendmail -C "$cfg" -f sender@e2e.test "user@$d" || fail "sendmail to $d"
done

# 5. Within a bounded time, Postfix tries each (any outcome ends the wait, so a wrong one fails
# at once): good.test delivered, the others deferred.
for d in good.test nostarttls.test wrongcert.test; do
  wait_for 60 "a delivery attempt to user@$d" grep -q "to=<user@$d>.*status=" "$log"
done
grep -q 'to=<user@good.test>.*status=sent' "$log" || fail "user@good.test was not sent"
for d in nostarttls.test wrongcert.test; do
  grep -q "to=<user@$d>.*status=deferred" "$log" || fail "user@$d was not deferred"
  ! grep -q "to=<user@$d>.*status=sent" "$log" || fail "user@$d was sent"
done

# good.test: the MX host saw the message, over TLS, and Postfix verified the certificate (the
# "Verified" trust level is logged only when a verify/secure policy matched the name).
# testnet-serve copies accepted messages to its spool every 0.1 s: wait for it.
good_spooled() { grep -l "Subject: e2e good.test $token" "$net"/mail/good.test.*.eml; }
wait_for 10 "the good.test MX host has the message" good_spooled
spooled=$(good_spooled | head -n 1)
grep -q '^TLS: yes$' "$spooled" || fail "the good.test message did not come over TLS"
grep -q '^RCPT TO:<user@good.test>$' "$spooled" || fail "wrong envelope at the good.test MX"
grep -q '^\.leading dot' "$spooled" || fail "dot-stuffing lost a line"
grep -q 'Verified TLS connection established to mx.good.test\[127.26.1.1\]:25' "$log" ||
  fail "no 'Verified TLS connection established' for mx.good.test"

# nostarttls.test: the policy required TLS that the MX does not offer.
grep -q 'to=<user@nostarttls.test>.*status=deferred.*TLS is required, but was not offered by host mx.nostarttls.test' "$log" ||
  fail "the nostarttls.test deferral does not say TLS was required but not offered"
# wrongcert.test: TLS was set up but the certificate failed the policy's name check.
grep -q 'to=<user@wrongcert.test>.*status=deferred.*Server certificate not verified' "$log" ||
  fail "the wrongcert.test deferral does not say the server certificate was not verified"
grep -q 'server certificate verification failed for mx.wrongcert.test\[127.26.1.3\]:25: num=62:hostname mismatch' "$log" ||
  fail "no 'hostname mismatch' verification failure logged for mx.wrongcert.test"

# Neither bad MX host ever got the message.
for d in nostarttls.test wrongcert.test; do
  if compgen -G "$net/mail/$d.*.eml" >/dev/null; then fail "the $d MX host received a message"; fi
done

# Both bad messages are still in the queue, deferred, with the TLS reason.
queue=$(postqueue -c "$cfg" -j)
for d in nostarttls.test wrongcert.test; do
  grep -q "\"queue_name\": *\"deferred\".*\"address\": *\"user@$d\"" <<<"$queue" ||
    fail "user@$d is not in the deferred queue: $queue"
done
grep -q '"address": *"user@nostarttls.test", *"delay_reason": *"TLS is required' <<<"$queue" ||
  fail "the queued nostarttls.test message has no TLS reason: $queue"
grep -q '"address": *"user@wrongcert.test", *"delay_reason": *"Server certificate not verified' <<<"$queue" ||
  fail "the queued wrongcert.test message has no certificate reason: $queue"
[ "$(echo "$queue" | grep -c '"queue_name"')" -eq 2 ] || fail "expected exactly 2 queued messages: $queue"
grep -q '"address": *"user@good.test"' <<<"$queue" && fail "good.test is still queued"

# 6. What Postfix's own map client gets from the resolver for each domain (now cached).
for d in good.test nostarttls.test wrongcert.test; do
  answer=$(timeout 30 postmap -c "$cfg" -q "$d" socketmap:inet:127.0.0.1:8461:postfix) ||
    fail "postmap -q $d: no answer"
  echo "postfix e2e: policy map answer for $d: $answer"
  case "$answer" in
    "secure match=mx.$d"*) ;;
    *) fail "expected 'secure match=mx.$d ...' for $d, got '$answer'" ;;
  esac
done

echo "---- what Postfix logged"
grep -E 'status=|TLS connection established|not verified|TLS is required' "$log"
ok=1
echo "postfix e2e: Postfix $version delivered good.test over verified TLS; nostarttls.test and wrongcert.test deferred and queued"
echo "postfix-e2e: 3 passed, 0 failed"
