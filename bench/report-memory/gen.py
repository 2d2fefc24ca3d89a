#!/usr/bin/env python3
"""Writes the hostile TLS-RPT inputs of BENCHMARKS.md "report parse memory" into a directory.

    python3 bench/report-memory/gen.py /tmp/report-memory

Each input is built from a small valid report (RFC 8460 §4.4) and a hostile payload; sizes are
chosen to sit just under the parser's per-report / per-mail limits (64 MiB decompressed per
report, 32 MiB of input), where the damage was largest before the fix. Deterministic: the same
bytes on every run.
"""
import base64
import gzip
import os
import sys

MIB = 1 << 20


def report(extra: str = "", details: str = "", policy_extra: str = "", report_id: str = "r1") -> bytes:
    """A valid report; `extra` is spliced into the top-level object (starts with a comma)."""
    return (
        '{"organization-name":"Org","date-range":{"start-datetime":"2024-01-01T00:00:00Z",'
        '"end-datetime":"2024-01-01T23:59:59Z"},"contact-info":"tlsrpt@org.example",'
        f'"report-id":"{report_id}","policies":[{{"policy":{{"policy-type":"sts",'
        '"policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"],'
        f'"policy-domain":"example.com","mx-host":["mx.example.com"]{policy_extra}}},'
        '"summary":{"total-successful-session-count":5,"total-failure-session-count":1},'
        f'"failure-details":[{details}]}}]{extra}}}'
    ).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def filler(unit: bytes, size: int) -> bytes:
    """`unit` repeated, comma separated, about `size` bytes in all (a JSON array body)."""
    n = max(1, size // (len(unit) + 1))
    return b",".join([unit] * n)


def just_under(build, limit: int) -> bytes:
    """build(pad) for the largest pad such that the result stays under `limit` bytes."""
    probe = build(0)
    return build(limit - len(probe) - 64)


def unknown_array(limit: int = 64 * MIB) -> bytes:
    """A report whose unknown top-level member is an array of millions of zeros."""
    def build(pad):
        return report(extra=',"x-padding":[' + filler(b"0", pad).decode() + "]")
    return just_under(build, limit)


def mail(parts: list[tuple[str, str, bytes]], subject: str = "Report Domain: example.com") -> bytes:
    out = [
        "From: tlsrpt@org.example\r\nTo: rua@example.com\r\n"
        f"Subject: {subject}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type="tlsrpt"; boundary="BOUND"\r\n\r\n'
        "--BOUND\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is a TLS report.\r\n"
    ]
    for ctype, name, data in parts:
        b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
        out.append(
            f"--BOUND\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; "
            f'filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}'
        )
    out.append("--BOUND--\r\n")
    return "".join(out).encode()


def padded(i: int, limit: int = 64 * MIB) -> bytes:
    """A valid report followed by white space up to just under `limit` bytes."""
    body = report(report_id=f"r{i}")
    return body + b" " * (limit - len(body) - 64)


def details(n: int) -> bytes:
    d = ('{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1",'
         '"receiving-mx-hostname":"mx.example.com","receiving-ip":"192.0.2.2",'
         '"failed-session-count":1}')
    return report(details=",".join([d] * n)).replace(
        b'"total-failure-session-count":1', f'"total-failure-session-count":{n}'.encode())


def policy_strings(limit: int = 64 * MIB) -> bytes:
    """A known member (`policy-string`) holding millions of empty strings."""
    def build(pad):
        return report(policy_extra="").replace(
            b'"policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"]',
            b'"policy-string":[' + filler(b'""', pad) + b"]")
    return just_under(build, limit)


def policy_strings_n(n: int) -> bytes:
    """`policy-string` holding `n` empty strings (1.6 million: just under the per-report memory
    estimate, so two of them fill a mail's)."""
    return report().replace(
        b'"policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"]',
        b'"policy-string":[' + b",".join([b'""'] * n) + b"]")


def long_string(limit: int = 64 * MIB) -> bytes:
    """One string member (`report-id`) of nearly 64 MiB."""
    def build(pad):
        return report(report_id="a" * pad)
    return just_under(build, limit)


def many_members(limit: int = 64 * MIB) -> bytes:
    """Hundreds of thousands of small unknown members in one object."""
    def build(pad):
        n = max(1, pad // 19)
        return report(extra="".join(f',"x{i:09}":[0,0]' for i in range(n)))
    return just_under(build, limit)


def many_parts(limit: int = 32 * MIB) -> bytes:
    """A mail of tiny text parts up to the input limit, with one report in the middle."""
    head = ("From: a@o.example\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=B\r\n\r\n")
    part = "--B\r\n\r\nx\r\n"
    rep = "--B\r\nContent-Type: application/tlsrpt+json\r\n\r\n" + report().decode() + "\r\n"
    n = (limit - len(head) - len(rep) - 64) // len(part)
    return (head + part * (n // 2) + rep + part * (n - n // 2) + "--B--\r\n").encode()


def many_headers(limit: int = 32 * MIB) -> bytes:
    """A mail whose header block is millions of tiny header fields, then one report."""
    tail = ("Content-Type: application/tlsrpt+json\r\n\r\n" + report().decode() + "\r\n").encode()
    line = b"X:y\r\n"
    n = (limit - len(tail) - 64) // len(line)
    return b"From: a@o.example\r\n" + line * n + tail


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/report-memory"
    os.makedirs(out, exist_ok=True)
    files = {}
    # The three inputs of issue 10 §2.1.
    files["unknown-array.json.gz"] = gz(unknown_array())
    files["three-parts.eml"] = mail(
        [("application/tlsrpt+gzip", f"r{i}.json.gz", files["unknown-array.json.gz"]) for i in range(3)])
    one_padded = gz(padded(0))
    files["padded-200.eml"] = mail(
        [("application/tlsrpt+gzip", f"r{i}.json.gz", gz(padded(i)) if i < 2 else one_padded)
         for i in range(200)])
    # Other worst cases found while fixing it.
    files["unknown-array-plain.json"] = unknown_array(32 * MIB - 1)
    files["details-100k.json.gz"] = gz(details(100_000))
    files["policy-strings.json.gz"] = gz(policy_strings())
    files["long-string.json.gz"] = gz(long_string())
    files["many-members.json.gz"] = gz(many_members())
    files["many-parts.eml"] = many_parts()
    files["many-headers.eml"] = many_headers()
    two = gz(policy_strings_n(1_600_000))
    files["policy-strings-x2.eml"] = mail(
        [("application/tlsrpt+gzip", f"r{i}.json.gz", two) for i in range(2)])
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}\t{len(data)}")


if __name__ == "__main__":
    main()
