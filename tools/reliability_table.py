"""Prints the reliability table from the rows the reliability tests wrote
(`$TAGPEER_RELIABILITY_DIR/*.jsonl`, one JSON object a line: kind, name,
faults, outcome, violations): the count per kind, every row, and the total of
invariant violations. Exits 1 when that total is not zero or a row is
malformed, 2 when there are no rows at all.

    python3 tools/reliability_table.py DIR [--markdown]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KINDS = ["scenario", "crash", "events", "bad-input"]


def load(directory: Path) -> tuple[list[dict], list[str]]:
    rows, problems = [], []
    for path in sorted(directory.glob("*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("violations"), int):
                    raise ValueError("no violations count")
            except ValueError as e:
                problems.append(f"{path.name}:{n}: {e}")
                continue
            rows.append(row)
    return rows, problems


def table(rows: list[dict], markdown: bool) -> str:
    header = ["kind", "name", "faults", "outcome", "violations"]
    cells = [[str(r.get(h, "")) for h in header] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [min(60, max([len(h)] + [len(row[i]) for row in cells])) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths[:-1]) + "  {}"
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in cells]
    return "\n".join(lines)


def summary(rows: list[dict], markdown: bool) -> str:
    kinds = KINDS + sorted({r.get("kind", "") for r in rows} - set(KINDS))
    header = ["kind", "runs", "invariant violations"]
    body = []
    for kind in kinds:
        of_kind = [r for r in rows if r.get("kind") == kind]
        body.append([kind, str(len(of_kind)), str(sum(r["violations"] for r in of_kind))])
    body.append(["total", str(len(rows)), str(sum(r["violations"] for r in rows))])
    if markdown:
        return "\n".join(["| " + " | ".join(header) + " |", "|---|---:|---:|"] +
                         ["| " + " | ".join(b) + " |" for b in body])
    return "\n".join(f"{k:10} {runs:>5} {v:>22}" for k, runs, v in [header] + body)


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    markdown = "--markdown" in argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    rows, problems = load(Path(args[0]))
    for p in problems:
        print(f"malformed row: {p}", file=sys.stderr)
    if not rows:
        print(f"no rows in {args[0]}", file=sys.stderr)
        return 2
    order = {k: i for i, k in enumerate(KINDS)}
    rows.sort(key=lambda r: (order.get(r.get("kind"), len(KINDS)), str(r.get("name")), str(r.get("faults"))))
    print(table(rows, markdown))
    print()
    print(summary(rows, markdown))
    total = sum(r["violations"] for r in rows)
    print()
    print(f"invariant violations: {total}")
    return 1 if total or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
