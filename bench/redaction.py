"""What redaction costs where driftwatch prints: `findings --format csv` of a large run goes through
`driftwatch.redaction.redact` on its way to stdout. This times that on a findings export of `--megabytes`,
with `--secrets` credentials remembered (as many as a deployment's connectors and alert routes read), and
none of them, nor anything shaped like one, in the text: the common case, which must stay cheap.

    .venv/bin/python bench/redaction.py [--megabytes 20] [--secrets 8] [--runs 5]

Prints the median wall time of `redact()` on the whole text and of writing it through the CLI's redacting
stdout (to /dev/null), with the throughput and the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import sys

from compare import median_seconds  # bench/ is a folder of scripts: its siblings import by name

from driftwatch.redaction import redact, redacting_output, remember

ROW = (
    "catalogue_parity,high,bluecherry,mirakl_fr,products,{sku},price,10.00,12.00,2.0000,EUR,"
    "{sku} costs 12.00 on mirakl_fr but 10.00 in the ERP,update_price,9b51377103b677d8,new,false,false,false\n"
)


def export(megabytes: float) -> str:
    rows, size, i = [], 0, 0
    while size < megabytes * 1_000_000:
        row = ROW.format(sku=f"{i:05d}-010-XL")
        rows.append(row)
        size += len(row)
        i += 1
    return "".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20)
    parser.add_argument("--secrets", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for n in range(args.secrets):
        remember(f"bench-secret-{n:02d}-{os.urandom(12).hex()}")
    text = export(args.megabytes)
    assert redact(text) == text, "the export holds nothing to redact"

    def through_stdout() -> None:
        with open(os.devnull, "w") as sink:
            saved, sys.stdout = sys.stdout, sink
            try:
                with redacting_output():
                    sys.stdout.write(text)
            finally:
                sys.stdout = saved

    megabytes = len(text) / 1_000_000
    for what, run in (("redact()", lambda: redact(text)), ("CLI stdout", through_stdout)):
        seconds = median_seconds(run, args.runs)
        print(f"{what:<10} {megabytes:.1f} MB: median {seconds:.3f} s ({megabytes / seconds:.0f} MB/s)")
    print(f"load average {os.getloadavg()[0]:.1f}, {args.secrets} secrets remembered, {args.runs} runs")


if __name__ == "__main__":
    main()
