#!/usr/bin/env python3
"""`mtasts resolver` vs postfix-mta-sts-resolver (SMR) on one test internet; run by run.sh inside
`unshare -n -m`.

    bench.py --mtasts BIN --testnet-serve BIN --load BIN --smr BIN [options]

Refuses to run unless the only network interface is loopback. Brings `lo` up, bind-mounts a
resolv.conf naming the testnet's DNS (127.26.0.53) over /etc/resolv.conf (private to the mount
namespace), starts `testnet-serve --resolver-bench` (DNS on 53, policy hosts on 443), then both
daemons, each pinned to CPU 1 (`taskset -c 1`); the test servers and the load tool run on CPU 0.
Both caches are warmed with the same keys (each key sent once, checked against what it must
answer). Then, interleaved ours/SMR, REPS times per connection count: warm hits (policy domains,
enforce and testing), no-policy domains (our negative cache; SMR asks DNS each time), and a
Postfix delivery mix (policy domains, no-policy domains followed by their parent probes,
bracketed next-hops). Then cold misses (a fresh domain per request, one connection) against the
injected DNS and HTTP delays, and resident memory of `mtasts resolver` started on a SQLite cache
file of --memory-policies policies. Prints Markdown tables; the raw numbers go to $BENCH_RAW
(JSON) when set.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

DNS_IP = "127.26.0.53"
OURS_ADDR = ("127.0.0.1", 8461)
SMR_ADDR = ("127.0.0.1", 8462)
MEM_ADDR = ("127.0.0.1", 8463)
MEM_METRICS = "127.0.0.1:9463"
DAEMON_CPU = "1"
CLIENT_CPU = "0"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def only_loopback():
    out = subprocess.run(["ip", "-o", "link", "show"], check=True, capture_output=True, text=True).stdout
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip())
    return names == ["lo"], names


def wait_for(pred, what, proc=None, timeout=120):
    deadline = time.time() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what}: the process exited ({proc.returncode})")
        if time.time() > deadline:
            sys.exit(f"{what}: not ready after {timeout} s")
        time.sleep(0.05)


def port_open(addr):
    """Whether something accepts on addr: (host, port), or a unix socket path."""
    try:
        if isinstance(addr, str):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(addr)
                return True
        with socket.create_connection(addr, timeout=0.5):
            return True
    except OSError:
        return False


def addr_spec(addr):
    """addr as `--listen` / `--addr` take it."""
    return f"unix:{addr}" if isinstance(addr, str) else f"{addr[0]}:{addr[1]}"


def proc_status(pid):
    """VmRSS and VmHWM of pid, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


# --- a small socketmap client (warming and checking answers) ---------------------------------

def netstring(b):
    return str(len(b)).encode() + b":" + b + b","


async def read_netstring(reader):
    head = await reader.readuntil(b":")
    n = int(head[:-1])
    if n > 200_000:
        raise ValueError("reply too long")
    body = await reader.readexactly(n + 1)
    return body[:-1].decode("utf-8", "replace")


async def ask_all(addr, keys, concurrency=16, timeout=30.0):
    """Sends every key once (`concurrency` persistent connections); returns {key: reply}."""
    queue = list(reversed(keys))
    replies = {}

    async def worker():
        if isinstance(addr, str):
            reader, writer = await asyncio.open_unix_connection(addr)
        else:
            reader, writer = await asyncio.open_connection(*addr)
        try:
            while queue:
                key = queue.pop()
                writer.write(netstring(b"postfix " + key.encode()))
                await writer.drain()
                replies[key] = await asyncio.wait_for(read_netstring(reader), timeout)
        finally:
            writer.close()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 900)
    return replies


def check_replies(who, replies, expect):
    """expect: {key: 'OK' | 'NOTFOUND'}; exits on the first mismatch."""
    bad = [(k, replies.get(k)) for k, v in expect.items() if not (replies.get(k) or "").startswith(v)]
    if bad:
        sys.exit(f"{who}: {len(bad)} wrong answers, e.g. {bad[:3]}")


# --- runs of the load tool ------------------------------------------------------------------

def load_run(a, addr, pid, keys_file, c, duration, requests, label):
    cmd = ["taskset", "-c", CLIENT_CPU, a.load, "--addr", addr_spec(addr), "-c", str(c),
           "--keys", keys_file, "--duration", str(duration), "--requests", str(requests),
           "--pid", str(pid), "--label", label]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    if p.returncode != 0:
        sys.exit(f"load tool failed ({label}): {p.stderr[-2000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if r["errors"] or r["requests"] == 0:
        sys.exit(f"load run {label}: {r['errors']} errors, {r['requests']} answered: {p.stdout}")
    return r


def med(runs, k):
    vals = [r[k] for r in runs if r.get(k) is not None]
    return statistics.median(vals) if vals else float("nan")


# --- memory with many cached policies -------------------------------------------------------

def make_cache_file(path, n, seed=7):
    """A cache file as `mtasts resolver` writes it, with n realistic policies."""
    rnd = random.Random(seed)
    providers = ["*.mail.protection.outlook.com", "*.google.com", "aspmx.l.google.com", "*.mx.cloudflare.net",
                 "mx1.mailbox.org", "*.pphosted.com", "*.mimecast.com", "mx.zoho.eu"]
    now = int(time.time())
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS sts_policy (domain TEXT PRIMARY KEY NOT NULL, id TEXT NOT NULL, "
               "body TEXT NOT NULL, expires_unix INTEGER NOT NULL)")
    rows = []
    for i in range(n):
        domain = f"{rnd.choice(['shop', 'mail', 'corp', 'news', 'team'])}{i}.example-{i % 97}.com"
        mode = "enforce" if rnd.random() < 0.7 else ("testing" if rnd.random() < 0.9 else "none")
        mxs = [f"mx{k}.{domain}" for k in range(1, rnd.randint(1, 2) + 1)]
        if rnd.random() < 0.5:
            mxs = [rnd.choice(providers)] + mxs[:1]
        body = "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (
            mode, "".join(f"mx: {m}\r\n" for m in mxs), rnd.choice([86400, 604800, 1209600, 31557600]))
        rows.append((domain, f"2026{i:08d}", body, now + 30 * 86400))
    db.executemany("INSERT OR REPLACE INTO sts_policy VALUES (?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    return [r[0] for r in rows], sum(len(r[2]) for r in rows)


def memory_run(a, d, n):
    path = os.path.join(d, f"cache-{n}.sqlite")
    domains, body_bytes = make_cache_file(path, n)
    err = open(os.path.join(d, f"mem-{n}.log"), "w")
    daemon = subprocess.Popen(["taskset", "-c", DAEMON_CPU, a.mtasts, "resolver", "--listen",
                               f"{MEM_ADDR[0]}:{MEM_ADDR[1]}", "--cache", path, "--metrics", MEM_METRICS,
                               "--ca-file", os.path.join(d, "root.pem"),
                               "--trust-anchor", os.path.join(d, "root.key"), "--log", "text"],
                              stdout=subprocess.DEVNULL, stderr=err)
    try:
        started = time.time()
        wait_for(lambda: port_open(MEM_ADDR), "mtasts resolver (memory run)", daemon, timeout=300)
        ready_s = time.time() - started
        time.sleep(3)
        # The first 1000 preloaded domains answer from the cache (enforce: OK, others NOTFOUND).
        replies = asyncio.run(ask_all(MEM_ADDR, domains[:1000], concurrency=4))
        ok = sum(1 for v in replies.values() if v.startswith("OK"))
        metrics = urllib.request.urlopen(f"http://{MEM_METRICS}/metrics", timeout=10).read().decode()
        entries = next(int(float(l.split()[-1])) for l in metrics.splitlines()
                       if l.startswith("mtasts_resolver_cache_entries"))
        st = proc_status(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        err.close()
    return {"policies": n, "file_bytes": os.path.getsize(path), "body_bytes": body_bytes,
            "ready_s": ready_s, "entries": entries, "ok_of_1000": ok, **st}


# --- main -----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mtasts", required=True)
    ap.add_argument("--testnet-serve", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--smr", required=True)
    ap.add_argument("--policies", type=int, default=2000)
    ap.add_argument("--no-policy", type=int, default=2000)
    ap.add_argument("--cold", type=int, default=40, help="cold domains per daemon")
    ap.add_argument("--dns-delay-ms", type=int, default=20)
    ap.add_argument("--http-delay-ms", type=int, default=50)
    ap.add_argument("--connections", default="1,16,64,100")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--memory-policies", default="0,100000")
    ap.add_argument("--phases", default="warm,nopolicy,mix")
    ap.add_argument("--ours-args", default="",
                    help="extra arguments for `mtasts resolver`, space-separated (e.g. --no-dane)")
    ap.add_argument("--memory-only", action="store_true", help="only the memory measurement")
    ap.add_argument("--transport", choices=["tcp", "unix"], default="tcp",
                    help="where both daemons listen: 127.0.0.1 (default) or a unix socket each")
    a = ap.parse_args()

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    ok, names = only_loopback()
    if not ok:
        sys.exit(f"refusing to run: network interfaces {names}, expected only lo (run inside unshare -n)")

    raw = {"args": vars(a)}
    with tempfile.TemporaryDirectory() as d:
        resolv = os.path.join(d, "resolv.conf")
        with open(resolv, "w") as f:
            f.write(f"nameserver {DNS_IP}\noptions timeout:2 attempts:2\n")
        subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
        procs = []
        try:
            raw.update(run_all(a, d, procs))
        finally:
            for p in reversed(procs):
                if p.poll() is None:
                    if p.stdin:
                        p.stdin.close()
                    else:
                        p.terminate()
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
    report(raw)
    if os.environ.get("BENCH_RAW"):
        with open(os.environ["BENCH_RAW"], "w") as f:
            json.dump(raw, f, indent=1)


def run_all(a, d, procs):
    out = {}
    server = subprocess.Popen(["taskset", "-c", CLIENT_CPU, a.testnet_serve, "--resolver-bench", str(a.policies),
                               str(a.no_policy), str(2 * a.cold), str(a.dns_delay_ms), str(a.http_delay_ms), d],
                              stdin=subprocess.PIPE, stderr=open(os.path.join(d, "testnet.log"), "w"))
    procs.append(server)
    wait_for(lambda: os.path.exists(os.path.join(d, "ready")), "testnet-serve", server, timeout=300)
    ca = os.path.join(d, "root.pem")
    lists = {k: open(os.path.join(d, f"{k}.txt")).read().split() for k in ("policy", "nopolicy", "cold")}
    if a.memory_only:
        out["memory"] = memory_runs(a, d)
        return out

    # SMR: its best case: internal cache big enough for every domain, cache_grace (the time after
    # which a cached policy is checked again on the request path) raised from 60 s to 1 day.
    ours_addr, smr_addr = OURS_ADDR, SMR_ADDR
    if a.transport == "unix":
        ours_addr, smr_addr = os.path.join(d, "ours.sock"), os.path.join(d, "smr.sock")
        smr_listen = f"path: {smr_addr}\nmode: 0666\n"
    else:
        smr_listen = f"host: {SMR_ADDR[0]}\nport: {SMR_ADDR[1]}\nreuse_port: true\n"
    smr_cfg = os.path.join(d, "smr.yml")
    with open(smr_cfg, "w") as f:
        f.write(f"{smr_listen}cache_grace: 86400\n"
                f"shutdown_timeout: 5\ncache:\n  type: internal\n  options:\n    cache_size: "
                f"{a.policies + a.no_policy + 2 * a.cold + 1000}\ndefault_zone:\n  strict_testing: false\n"
                f"  timeout: 10\n")
    smr_env = dict(os.environ, SSL_CERT_FILE=ca)
    smr_env.pop("SSL_CERT_DIR", None)
    smr = subprocess.Popen(["taskset", "-c", DAEMON_CPU, a.smr, "-c", smr_cfg, "-v", "warn"],
                           env=smr_env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "smr.log"), "w"))
    procs.append(smr)
    ours = subprocess.Popen(["taskset", "-c", DAEMON_CPU, a.mtasts, "resolver", "--listen",
                             addr_spec(ours_addr), "--cache", "memory", "--ca-file", ca,
                             "--trust-anchor", os.path.join(d, "root.key"),
                             "--postfix-version", "3.7", "--log", "text", *a.ours_args.split()],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(os.environ.get("BENCH_LOGS", d), "ours.log"), "w"))
    procs.append(ours)
    wait_for(lambda: port_open(ours_addr), "mtasts resolver", ours)
    wait_for(lambda: port_open(smr_addr), "mta-sts-daemon", smr)
    daemons = {"mtasts": (ours_addr, ours.pid), "smr": (smr_addr, smr.pid)}
    out["versions"] = {
        "mtasts": subprocess.run([a.mtasts, "--version"], capture_output=True, text=True).stdout.strip(),
        "smr": subprocess.run([os.path.join(os.path.dirname(a.smr), "python"), "-c",
                               "import importlib.metadata as m; print(m.version('postfix-mta-sts-resolver'))"],
                              capture_output=True, text=True).stdout.strip(),
    }

    # Warm both caches with the same keys, checking every answer.
    policy, nopolicy = lists["policy"], lists["nopolicy"]
    expect = {k: ("NOTFOUND" if i % 4 == 3 else "OK secure match=") for i, k in enumerate(policy)}
    expect.update({k: "NOTFOUND" for k in nopolicy})
    out["warmup"] = {}
    for who, (addr, pid) in daemons.items():
        t = time.time()
        replies = asyncio.run(ask_all(addr, policy + nopolicy))
        check_replies(who, replies, expect)
        out["warmup"][who] = {"seconds": time.time() - t, "keys": len(replies), **proc_status(pid)}
        log(f"warm-up {who}: {len(replies)} keys in {time.time() - t:.1f} s, answers as expected")

    # Key files per phase.
    rnd = random.Random(1)
    files = {}
    warm = policy[:]
    rnd.shuffle(warm)
    nop = nopolicy[:]
    rnd.shuffle(nop)
    mix = []
    for _ in range(20000):
        x = rnd.random()
        if x < 0.30:
            mix.append(rnd.choice(policy))
        elif x < 0.90:
            dom = rnd.choice(nopolicy)
            mix += [dom, "." + dom.split(".", 1)[1], ".test"]
        else:
            mix.append(f"[mx1.provider.test]:587")
    for name, keys in (("warm", warm), ("nopolicy", nop), ("mix", mix)):
        files[name] = os.path.join(d, f"keys-{name}.txt")
        with open(files[name], "w") as f:
            f.write("\n".join(keys) + "\n")
    # The bracketed next-hop's domain (mx1.provider.test) has no policy: warm it too.
    for addr, _ in daemons.values():
        asyncio.run(ask_all(addr, ["[mx1.provider.test]:587"], concurrency=1))

    conns = [int(c) for c in a.connections.split(",")]
    out["phases"] = {}
    for phase in a.phases.split(","):
        for c in conns:
            runs = {who: [] for who in daemons}
            for rep in range(a.reps):
                for who, (addr, pid) in daemons.items():
                    r = load_run(a, addr, pid, files[phase], c, a.duration, 50_000_000, f"{phase}/{who}/c{c}")
                    runs[who].append(r)
            out["phases"].setdefault(phase, {})[c] = runs
            log(f"{phase} c={c}: " + ", ".join(
                f"{who} {med(rs, 'rps'):.0f} req/s p99 {med(rs, 'p99_us'):.0f} µs "
                f"cpu {med(rs, 'server_cpu_us_per_req'):.1f} µs/req" for who, rs in runs.items()))

    # Cold misses: a fresh domain per request, one connection, each daemon its own domains.
    out["cold"] = {}
    cold = lists["cold"]
    for k, (who, (addr, pid)) in enumerate(daemons.items()):
        keys = cold[k * a.cold:(k + 1) * a.cold]
        path = os.path.join(d, f"keys-cold-{who}.txt")
        with open(path, "w") as f:
            f.write("\n".join(keys) + "\n")
        r = load_run(a, addr, pid, path, 1, 120, len(keys), f"cold/{who}")
        if r["ok"] != len(keys):
            sys.exit(f"cold {who}: {r['ok']} of {len(keys)} answered OK: {r}")
        out["cold"][who] = r
        log(f"cold {who}: p50 {r['p50_us'] / 1000:.1f} ms, max {r['max_us'] / 1000:.1f} ms")
    out["rss_after"] = {who: proc_status(pid) for who, (_, pid) in daemons.items()}

    out["memory"] = memory_runs(a, d)
    return out


def memory_runs(a, d):
    out = []
    for n in [int(x) for x in a.memory_policies.split(",") if x]:
        m = memory_run(a, d, n)
        out.append(m)
        log(f"memory with {n} policies: VmRSS {m['VmRSS'] / 1024:.1f} MiB, VmHWM {m['VmHWM'] / 1024:.1f} MiB, "
            f"{m['entries']} entries, ready in {m['ready_s']:.1f} s")
    return out


def report(raw):
    names = {"mtasts": "mtasts resolver", "smr": f"SMR {raw.get('versions', {}).get('smr', '')}"}
    print(f"versions: {raw.get('versions')}\n")
    print("### Warm-up (every policy and no-policy domain once, 16 connections)\n")
    print("| daemon | keys | seconds | RSS after |")
    print("| --- | --- | --- | --- |")
    for who, w in raw.get("warmup", {}).items():
        print(f"| {names[who]} | {w['keys']} | {w['seconds']:.1f} | {w['VmRSS'] / 1024:.1f} MiB |")
    for phase, by_c in raw.get("phases", {}).items():
        print(f"\n### Phase `{phase}` (medians of {raw['args']['reps']} runs of {raw['args']['duration']} s, "
              f"{raw['args'].get('transport', 'tcp')})\n")
        print("| C | daemon | req/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | ratio req/s | ratio CPU/req |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for c, runs in by_c.items():
            o, s = runs["mtasts"], runs["smr"]
            for who, rs in runs.items():
                ratio = cpu_ratio = ""
                if who == "mtasts":
                    ratio = f"**{med(o, 'rps') / med(s, 'rps'):.1f}x**"
                    cpu_ratio = f"**{med(s, 'server_cpu_us_per_req') / med(o, 'server_cpu_us_per_req'):.1f}x**"
                print(f"| {c} | {names[who]} | {med(rs, 'rps'):.0f} | {med(rs, 'p50_us'):.0f} | {med(rs, 'p99_us'):.0f} | "
                      f"{med(rs, 'p999_us'):.0f} | {med(rs, 'server_cpu_us_per_req'):.1f} | {ratio} | {cpu_ratio} |")
    if raw.get("cold"):
        a = raw["args"]
        need = 2 * a["dns_delay_ms"] + a["http_delay_ms"]
        print(f"\n### Cold miss ({a['cold']} fresh domains each, one connection; DNS answers after "
              f"{a['dns_delay_ms']} ms, the policy host after {a['http_delay_ms']} ms)\n")
        print(f"Round trips a miss needs: TXT ({a['dns_delay_ms']} ms) + A/AAAA in parallel ({a['dns_delay_ms']} ms) "
              f"+ TCP + TLS (loopback, ~0.1 ms) + HTTP ({a['http_delay_ms']} ms) = {need} ms.\n")
        print("| daemon | p50 ms | p99 ms | max ms | p50 / round trips | server CPU ms per miss |")
        print("| --- | --- | --- | --- | --- | --- |")
        for who, r in raw["cold"].items():
            print(f"| {names[who]} | {r['p50_us'] / 1000:.1f} | {r['p99_us'] / 1000:.1f} | {r['max_us'] / 1000:.1f} | "
                  f"{r['p50_us'] / 1000 / need:.2f}x | {r['server_cpu_us_per_req'] / 1000:.2f} |")
    if raw.get("rss_after"):
        print("\nRSS after all phases: " + ", ".join(
            f"{names[w]} {s['VmRSS'] / 1024:.1f} MiB (peak {s['VmHWM'] / 1024:.1f} MiB)" for w, s in raw["rss_after"].items()))
    if raw.get("memory"):
        print("\n### `mtasts resolver` memory with a cache file of N policies (read at start-up)\n")
        print("| policies | cache file | policy bodies | entries in memory | ready after | VmRSS | VmHWM (peak) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for m in raw["memory"]:
            print(f"| {m['policies']} | {m['file_bytes'] / 1048576:.1f} MiB | {m['body_bytes'] / 1048576:.1f} MiB | "
                  f"{m['entries']} | {m['ready_s']:.1f} s | {m['VmRSS'] / 1024:.1f} MiB | {m['VmHWM'] / 1024:.1f} MiB |")


if __name__ == "__main__":
    main()
