#!/usr/bin/env python3
"""Bulk `mtasts check` on the test internet: domains per second, CPU per domain, peak RSS.

    bench/check-bulk/run.py N [N...] [--concurrency C] [--per-destination P]

For each N: starts `testnet-serve N` (its own process: DNS, four shared MX hosts, one policy host
issuing certificates per SNI, all on 127.77.x.y), runs `mtasts check --input <N domains> --format
jsonl` against it, and measures the checker process alone (wall time, user+system CPU, peak RSS via
wait4 on the child), plus the test server's setup time and peak RSS (VmHWM). Every line of
output is checked: N results, all `pass`.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def server_peak_rss_mib(pid):
    """The test server's peak resident set (VmHWM), read while it still runs."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv):
    sizes, concurrency, per_dest = [], 64, 8
    args = iter(argv)
    for a in args:
        if a == "--concurrency":
            concurrency = int(next(args))
        elif a == "--per-destination":
            per_dest = int(next(args))
        else:
            sizes.append(int(a))
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "mtasts", "-p", "mtasts-testnet", "--bin", "mtasts", "--bin", "testnet-serve"], cwd=ROOT, check=True)
    print(f"| domains | concurrency | per MX address | wall s | domains/s | CPU ms/domain | peak RSS MiB | results | server setup s | server peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            server = subprocess.Popen([os.path.join(TARGET, "release", "testnet-serve"), str(n), d], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                setup_start = time.perf_counter()
                deadline = time.time() + 300
                while not os.path.exists(os.path.join(d, "ready")):
                    if time.time() > deadline or server.poll() is not None:
                        sys.exit("testnet-serve did not become ready")
                    time.sleep(0.1)
                setup = time.perf_counter() - setup_start
                env = dict(line.split("=", 1) for line in open(os.path.join(d, "env")).read().split())
                cmd = [os.path.join(TARGET, "release", "mtasts"), "check", "--input", os.path.join(d, "domains.txt"),
                       "--format", "jsonl", "--nameserver", env["NAMESERVER"], "--ca-file", os.path.join(d, "root.pem"),
                       "--trust-anchor", os.path.join(d, "root.key"),
                       "--smtp-port", env["SMTP_PORT"], "--https-port", env["HTTPS_PORT"], "--timeout", "10",
                       "--concurrency", str(concurrency), "--per-destination", str(per_dest)]
                results = os.path.join(d, "results.jsonl")
                errors = os.path.join(d, "stderr.txt")
                with open(results, "wb") as out_f, open(errors, "wb") as err_f:
                    start = time.perf_counter()
                    checker = subprocess.Popen(cmd, stdout=out_f, stderr=err_f)
                    # wait4: the resource usage of this one process (not of cargo or the server).
                    _, status, usage = os.wait4(checker.pid, 0)
                    wall = time.perf_counter() - start
                # Count the results line by line: the runner must stay small. Its memory leaks
                # into the next checker's ru_maxrss (the child of a fork/vfork inherits the
                # parent's peak RSS until exec), so holding 100 000 results here made the next
                # row's checker "peak" at 272 MiB.
                verdicts, count = {}, 0
                with open(results) as f:
                    for line in f:
                        v = json.loads(line)["verdict"]
                        verdicts[v] = verdicts.get(v, 0) + 1
                        count += 1
                stderr_tail = open(errors).read()[-2000:]
                server_hwm = server_peak_rss_mib(server.pid)
            finally:
                server.stdin.close()
                server.wait(timeout=60)
        cpu = usage.ru_utime + usage.ru_stime
        rss_mib = usage.ru_maxrss / 1024
        summary = ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))
        print(f"| {n} | {concurrency} | {per_dest} | {wall:.1f} | {n / wall:.0f} | {1000 * cpu / n:.2f} | {rss_mib:.1f} | {summary} | {setup:.1f} | {server_hwm:.0f} |")
        if count != n:
            sys.exit(f"expected {n} results, got {count}: {stderr_tail}")


if __name__ == "__main__":
    main(sys.argv[1:])
