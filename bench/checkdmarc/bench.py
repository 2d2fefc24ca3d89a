#!/usr/bin/env python3
"""mtasts check vs checkdmarc on the testnet's scenario set; run by run.sh inside `unshare -n -m`.

    bench.py --reps N --mtasts BIN --testnet-serve BIN --checkdmarc BIN

Refuses to run unless the only network interface is loopback (so nothing can leave the machine).
Brings `lo` up, bind-mounts a resolv.conf naming the testnet's DNS (127.25.0.53) over
/etc/resolv.conf (the mount namespace keeps that private), starts `testnet-serve --standard-ports`,
then N times, interleaved: `mtasts check --input DOMAINS --format jsonl --nameserver 127.25.0.53
--ca-file CA` and `checkdmarc --check-mx-tls -n 127.25.0.53 -f json DOMAINS...` with
REQUESTS_CA_BUNDLE and SSL_CERT_FILE set to the testnet CA. Prints the wall times, medians and
ratio, and a table of what each tool reports per scenario, as Markdown.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

DNS_IP = "127.25.0.53"

# Words in checkdmarc's message that name the cause of each broken scenario (not just "something
# failed"): the "names the cause" column.
CAUSE = {
    "no-record": "does not exist",
    "bad-record": "id value",
    "two-records": "Multiple MTA-STS records",
    "no-policy-host": "Failed to resolve",
    "fetch-404": "HTTP 404",
    "redirect": "HTTP 301",
    "content-type": "Content-Type",
    "policy-cert-expired": "certificate has expired",
    "policy-cert-wrong-name": "Hostname mismatch",
    "policy-cert-untrusted": "self-signed certificate in certificate chain",
    "invalid-policy": "Invalid mode",
    "mx-not-covered": "not included in the MTA-STS policy",
    "mx-no-starttls": "STARTTLS is not supported",
    "mx-cert-expired": "certificate has expired",
    "mx-cert-wrong-name": "Hostname mismatch",
    "mx-cert-untrusted": "self-signed certificate in certificate chain",
    "no-tlsrpt": "does not exist",
    "bad-tlsrpt": "not a valid SMTP TLS Reporting URI",
    "tlsrpt-old-name": "_smtp-tlsrpt",
}


def only_loopback():
    # `ip` asks the kernel about this network namespace (/sys/class/net would show the mount
    # namespace's sysfs, which is the host's).
    out = subprocess.run(["ip", "-o", "link", "show"], check=True, capture_output=True, text=True).stdout
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip())
    return names == ["lo"], names


def start_server(binary, d):
    server = subprocess.Popen([binary, "--standard-ports", d], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(d, "ready")):
        if time.time() > deadline or server.poll() is not None:
            err = server.stderr.read().decode() if server.poll() is not None else ""
            sys.exit(f"testnet-serve did not become ready: {err}")
        time.sleep(0.05)
    return server


def run_timed(cmd, env=None, out_path=None):
    with open(out_path, "wb") as out:
        start = time.perf_counter()
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, env=env, timeout=900)
        wall = time.perf_counter() - start
    return wall, p.returncode, p.stderr.decode(errors="replace")


def checkdmarc_signals(result, domain):
    """What checkdmarc says about MTA-STS, the MX hosts and TLS-RPT, as short strings per area."""
    def norm(s):
        return re.sub(r"127\.25\.\d+\.\d+", "<ip>", str(s).replace(domain, "<domain>"))

    sig = {"mta_sts": [], "mx": [], "tlsrpt": []}
    sts = result.get("mta_sts", {})
    if not sts.get("valid", False):
        sig["mta_sts"].append("invalid: " + norm(sts.get("error", "?")))
    sig["mta_sts"] += ["warning: " + norm(w) for w in sts.get("warnings", [])]
    mx = result.get("mx", {})
    if "error" in mx:
        sig["mx"].append("error: " + norm(mx["error"]))
    sig["mx"] += ["warning: " + norm(w) for w in mx.get("warnings", [])]
    for host in mx.get("hosts", []):
        if host.get("starttls") is False:
            sig["mx"].append(f"{norm(host.get('hostname'))}: starttls false")
    rpt = result.get("smtp_tls_reporting", {})
    if not rpt.get("valid", False):
        sig["tlsrpt"].append("invalid: " + norm(rpt.get("error", "?")))
    sig["tlsrpt"] += ["warning: " + norm(w) for w in rpt.get("warnings", [])]
    return sig


def area(name):
    if name.startswith("mx-"):
        return "mx"
    if "tlsrpt" in name:
        return "tlsrpt"
    return "mta_sts"


def md(s, n=110):
    s = " ".join(str(s).split()).replace("|", "\\|")
    return s if len(s) <= n else s[: n - 1] + "…"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mtasts", required=True)
    ap.add_argument("--testnet-serve", required=True)
    ap.add_argument("--checkdmarc", required=True)
    a = ap.parse_args()

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    ok, names = only_loopback()
    if not ok:
        sys.exit(f"refusing to run: network interfaces {names}, expected only lo (run inside unshare -n)")

    with tempfile.TemporaryDirectory() as d:
        resolv = os.path.join(d, "resolv.conf")
        with open(resolv, "w") as f:
            f.write(f"nameserver {DNS_IP}\noptions timeout:2 attempts:1\n")
        subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
        server = start_server(a.testnet_serve, d)
        try:
            ca = os.path.join(d, "root.pem")
            scenarios = []
            with open(os.path.join(d, "scenarios.tsv")) as f:
                next(f)
                for line in f:
                    name, domain, expect, what = line.rstrip("\n").split("\t")
                    scenarios.append((name, domain, None if expect == "-" else expect, what))
            domains = [s[1] for s in scenarios]
            ours_cmd = [a.mtasts, "check", "--input", os.path.join(d, "domains.txt"), "--format", "jsonl",
                        "--nameserver", DNS_IP, "--ca-file", ca,
                        "--trust-anchor", os.path.join(d, "root.key")]
            theirs_cmd = [a.checkdmarc, "--check-mx-tls", "-n", DNS_IP, "-f", "json"] + domains
            no_tls_cmd = [a.checkdmarc, "-n", DNS_IP, "-f", "json"] + domains
            seq_cmd = ours_cmd + ["--concurrency", "1"]
            startup = {"mtasts --version": [a.mtasts, "--version"], "checkdmarc --version": [a.checkdmarc, "--version"]}
            env = dict(os.environ, REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca)
            ours_t, theirs_t, no_tls_t, seq_t = [], [], [], []
            startup_t = {k: [] for k in startup}
            ours_out, theirs_out = os.path.join(d, "ours.jsonl"), os.path.join(d, "theirs.json")
            for rep in range(a.reps):
                t, rc, err = run_timed(ours_cmd, out_path=ours_out)
                if rc not in (0, 1):
                    sys.exit(f"mtasts check failed ({rc}): {err[-2000:]}")
                ours_t.append(t)
                t, rc, err = run_timed(theirs_cmd, env=env, out_path=theirs_out)
                if rc != 0:
                    sys.exit(f"checkdmarc failed ({rc}): {err[-2000:]}")
                theirs_t.append(t)
                t, rc, err = run_timed(no_tls_cmd, env=env, out_path=os.devnull)
                if rc != 0:
                    sys.exit(f"checkdmarc (no MX TLS) failed ({rc}): {err[-2000:]}")
                no_tls_t.append(t)
                t, rc, err = run_timed(seq_cmd, out_path=os.devnull)
                if rc not in (0, 1):
                    sys.exit(f"mtasts check --concurrency 1 failed ({rc}): {err[-2000:]}")
                seq_t.append(t)
                for k, cmd in startup.items():
                    startup_t[k].append(run_timed(cmd, out_path=os.devnull)[0])
                print(f"rep {rep + 1}: mtasts {ours_t[-1]:.3f} s, checkdmarc {theirs_t[-1]:.3f} s, "
                      f"checkdmarc without MX TLS {no_tls_t[-1]:.3f} s", file=sys.stderr)
            ours = {}
            for line in open(ours_out):
                r = json.loads(line)
                ours[r["domain"]] = r
            theirs_raw = json.load(open(theirs_out))
            if isinstance(theirs_raw, dict):
                theirs_raw = [theirs_raw]
            theirs = {r["domain"]: r for r in theirs_raw}
        finally:
            server.stdin.close()
            server.wait(timeout=30)

    mo, mt = statistics.median(ours_t), statistics.median(theirs_t)
    print(f"### Wall time for the whole scenario set ({len(domains)} domains), {a.reps} repetitions\n")
    print("| tool | runs (s) | median (s) | per domain (ms) |")
    print("| --- | --- | --- | --- |")
    print(f"| mtasts check | {', '.join(f'{t:.3f}' for t in ours_t)} | {mo:.3f} | {1000 * mo / len(domains):.1f} |")
    print(f"| checkdmarc --check-mx-tls | {', '.join(f'{t:.2f}' for t in theirs_t)} | {mt:.2f} | {1000 * mt / len(domains):.0f} |")
    ms = statistics.median(seq_t)
    print(f"| mtasts check --concurrency 1 (one domain at a time) | {', '.join(f'{t:.3f}' for t in seq_t)} | {ms:.3f} | {1000 * ms / len(domains):.1f} |")
    mn = statistics.median(no_tls_t)
    print(f"| checkdmarc (no MX TLS test) | {', '.join(f'{t:.2f}' for t in no_tls_t)} | {mn:.2f} | {1000 * mn / len(domains):.0f} |")
    print(f"\n**Ratio (checkdmarc --check-mx-tls median / mtasts median): {mt / mo:.1f}x**"
          f" (without the MX TLS test: {mn / mo:.1f}x; mtasts one domain at a time: {mt / ms:.1f}x)\n")
    print("Process start-up alone (median): " + ", ".join(
        f"`{k}` {1000 * statistics.median(v):.0f} ms" for k, v in startup_t.items()) + "\n")

    clean = next(s for s in scenarios if s[2] is None)
    base = checkdmarc_signals(theirs[clean[1]], clean[1])
    print("### What each tool reports per scenario\n")
    print("| scenario | mtasts verdict | mtasts finds the expected id | checkdmarc reports a problem | checkdmarc names the cause | what checkdmarc says (beyond what it says for the clean domain) |")
    print("| --- | --- | --- | --- | --- | --- |")
    found_ours = found_theirs = named_theirs = 0
    for name, domain, expect, _ in scenarios:
        r = ours.get(domain, {})
        ids = [f["id"] for f in r.get("findings", [])]
        if expect is None:
            ours_ok = "yes (no finding)" if not ids else f"no: {', '.join(ids)}"
        else:
            ours_ok = f"yes: `{expect}`" if expect in ids else f"**no** ({', '.join(ids)})"
            found_ours += expect in ids
        sig = checkdmarc_signals(theirs.get(domain, {}), domain)
        new = [s for s in sig[area(name)] if s not in base[area(name)]]
        other = [f"{k}: {s}" for k in sig if k != area(name) for s in sig[k] if s not in base[k]]
        if expect is None:
            detected = named = "n/a"
            said = "; ".join(f"{k}: {s}" for k in base for s in base[k]) or "nothing"
        else:
            detected = "yes" if new else "**no**"
            found_theirs += bool(new)
            hit = any(CAUSE.get(name, "\0") in s for s in new)
            named = "yes" if hit else "**no**"
            named_theirs += hit
            said = "; ".join(new + other) or "nothing different from the clean domain"
        print(f"| `{name}` | {r.get('verdict', '?')} | {ours_ok} | {detected} | {named} | {md(said, 160)} |")
    broken = sum(1 for s in scenarios if s[2] is not None)
    print(f"\nBroken scenarios: mtasts reports the expected finding for {found_ours}/{broken}; checkdmarc "
          f"reports a problem for {found_theirs}/{broken} and names the cause for {named_theirs}/{broken}.")
    with open(os.environ.get("BENCH_RAW", os.devnull), "w") as f:
        json.dump({"ours": ours, "theirs": theirs}, f, indent=1)


if __name__ == "__main__":
    main()
