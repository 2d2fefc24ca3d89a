"""Times parsedmarc's SMTP TLS report parser over the given report JSON files.

    bench.py [--list-accepted] [--entry json|file] [-n N] FILE...

The counterpart of `cargo run --release -p mtasts-core --example report_throughput`: reads every
FILE into memory as bytes, parses each once as a warm-up, then times N (default 1000) passes over
all of them with `parsedmarc.parse_smtp_tls_report_json` (or, with `--entry file`,
`parsedmarc.parse_report_file(data, offline=True)`: parsedmarc's entry point for a report file or
mail, as its CLI uses it, with no network look-ups) and prints one line:
`parsedmarc reports=<files> iterations=<N> seconds=<s> reports_per_s=<r>`.
With --list-accepted it prints instead the files parsedmarc accepts, one per line, and the
reason for each rejection on stderr.
"""

import sys
import time

import parsedmarc


def main(argv):
    iterations = 1000
    list_accepted = False
    entry = "json"
    paths = []
    args = iter(argv)
    for arg in args:
        if arg == "--list-accepted":
            list_accepted = True
        elif arg == "--entry":
            entry = next(args)
        elif arg == "-n":
            iterations = int(next(args))
        else:
            paths.append(arg)
    if not paths:
        print("usage: bench.py [--list-accepted] [-n N] FILE...", file=sys.stderr)
        return 2
    inputs = []
    for path in paths:
        with open(path, "rb") as f:
            inputs.append(f.read())

    if entry == "file":
        def parse(data):
            return parsedmarc.parse_report_file(data, offline=True)
    else:
        parse = parsedmarc.parse_smtp_tls_report_json
    if list_accepted:
        for path, data in zip(paths, inputs):
            try:
                parse(data)
                print(path)
            except Exception as e:  # InvalidSMTPTLSReport, ParserError
                print(f"parsedmarc rejects {path}: {e}", file=sys.stderr)
        return 0

    for path, data in zip(paths, inputs):
        try:
            parse(data)
        except Exception as e:
            print(f"parsedmarc rejects {path}: {e}; pass only accepted files", file=sys.stderr)
            return 1
    start = time.perf_counter()
    for _ in range(iterations):
        for data in inputs:
            parse(data)
    seconds = time.perf_counter() - start
    print(
        f"parsedmarc reports={len(inputs)} iterations={iterations} "
        f"seconds={seconds:.6f} reports_per_s={len(inputs) * iterations / seconds:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
