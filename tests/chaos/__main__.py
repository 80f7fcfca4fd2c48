"""``python -m tests.chaos``: run seeded chaos runs and print the table.

    python -m tests.chaos --runs 10 --seed 1 --fault kill-host-replica
    python -m tests.chaos --runs 5 --seed 1 --fault all --sidecar daprd --out table.md

Each fault class gets a deployment of its own; runs ``--seed`` .. ``--seed + runs - 1``
run one after another on it. Every run is printed as it ends (verdict, seconds, run id,
what happened); the table follows (``--out`` writes it as markdown, with the runs that
were not correct listed under it). Exit status 1 when any run was a defect.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import sys
from pathlib import Path

from tests.chaos.harness import (
    FAULTS,
    RunOutcome,
    Summary,
    Target,
    markdown_table,
    run_class,
    summarise,
    text_table,
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=5, help="seeded runs per fault class")
    parser.add_argument("--seed", type=int, default=1, help="the first run's seed")
    parser.add_argument(
        "--fault",
        action="append",
        choices=[*FAULTS, "all"],
        help="a fault class (repeatable), or all",
    )
    parser.add_argument("--sidecar", choices=["local", "daprd"], default="local")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds a run may take")
    parser.add_argument("--out", type=Path, help="write the table as markdown to this file")
    return parser.parse_args(argv)


def _print_outcome(outcome: RunOutcome) -> None:
    detail = f"  {outcome.detail}" if outcome.detail else ""
    print(
        f"{outcome.fault:<20} seed {outcome.seed:<5} {outcome.verdict:<14} "
        f"{outcome.seconds:6.1f} s  {outcome.run_id}{detail}",
        flush=True,
    )


async def _main(args: argparse.Namespace) -> list[Summary]:
    names = args.fault or ["all"]
    faults = list(FAULTS.values()) if "all" in names else [FAULTS[n] for n in names]
    target: Target = args.sidecar
    summaries = []
    for fault in faults:
        summaries.append(
            await run_class(
                target,
                fault,
                args.runs,
                args.seed,
                report=_print_outcome,
                deadline_s=args.deadline,
            )
        )
    return summaries


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING)
    summaries = asyncio.run(_main(args))
    rows = summarise(summaries)
    print()
    print(text_table(rows))
    if args.out is not None:
        command = " ".join(["python -m tests.chaos", *(argv if argv is not None else sys.argv[1:])])
        lines = [
            f"`{command}` — {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
            "",
            markdown_table(rows),
        ]
        odd = [o for s in summaries for o in s.outcomes if o.verdict != "correct"]
        if odd:
            lines += ["", "Runs that were not correct:", ""]
            lines += [f"- {o.fault} seed {o.seed}: {o.verdict}: {o.detail}" for o in odd]
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    defects = sum(s.count("DEFECT") for s in summaries)
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
