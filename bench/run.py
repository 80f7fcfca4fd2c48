#!/usr/bin/env python
"""Run superstep and the two peers on the same workloads, in one invocation, and compare.

    .venv/bin/python bench/run.py [--reps 3] [--only W1,W2] [--peer-venvs DIR] [--write-readme]
    .venv/bin/python bench/run.py --from-json bench/results/<file>.json [--write-readme]

The peers run in their own virtual environments, created on first use under
``.peer-venvs/`` (ignored by git) with pinned versions, or taken from
``--peer-venvs DIR`` (which must hold ``af/`` and ``lg/``). Workloads are
interleaved: for each workload, superstep, then agent-framework, then LangGraph,
so that a change in machine load hits all three alike. Each script runs every
(workload, repetition) in a fresh child process and reports medians.

The raw JSON (all three summaries, the command, load averages before and after)
goes to ``bench/results/``; the table of medians, ratios and the issue's targets
is printed and, with ``--write-readme``, written into ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
README = BENCH / "README.md"
OURS = BENCH / "superstep_bench.py"

WORKLOADS = ["W1", "W1_ckpt", "W1_fckpt", "W2", "W3a", "W3b", "W3c", "W3_floor"]
TABLE_START = "<!-- bench-table:start -->"
TABLE_END = "<!-- bench-table:end -->"


@dataclass(frozen=True)
class Peer:
    key: str
    name: str
    venv: str
    script: str
    requirement: str
    distribution: str
    workloads: tuple[str, ...]


PEERS = (
    Peer(
        "agent-framework",
        "agent-framework",
        "af",
        "af_bench.py",
        "agent-framework-core==1.23.0",
        "agent-framework-core",
        ("W1", "W1_ckpt", "W1_fckpt", "W2", "W3a", "W3b", "W3c", "W3_floor"),
    ),
    Peer(
        "langgraph",
        "LangGraph",
        "lg",
        "lg_bench.py",
        "langgraph==1.2.22",
        "langgraph",
        ("W1", "W1_ckpt", "W2", "W3a", "W3b", "W3_floor"),
    ),
)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- peer environments ------------------------------------------------------------------
def ensure_venv(root: Path, peer: Peer, *, create: bool) -> Path:
    """The peer's interpreter, installing the pinned requirement when needed."""
    venv = root / peer.venv
    python = venv / "bin" / "python"
    wanted = peer.requirement.split("==", 1)[1]
    if python.exists():
        have = _installed_version(python, peer.distribution)
        if have == wanted:
            return python
        if not create:
            raise SystemExit(f"{venv} has {peer.distribution} {have}, the bench pins {wanted}")
        log(f"{venv}: {peer.distribution} {have} -> installing {peer.requirement}")
    else:
        if not create:
            raise SystemExit(f"no virtual environment at {venv}")
        log(f"creating {venv} with {peer.requirement} (one-off, a minute or two)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-U", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", peer.requirement], check=True)
    return python


def _installed_version(python: Path, distribution: str) -> str | None:
    code = (
        "import importlib.metadata as m\n"
        f"try: print(m.version({distribution!r}))\n"
        "except m.PackageNotFoundError: print('')"
    )
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


# -- running --------------------------------------------------------------------------------
def run_script(
    python: Path | str, script: Path, workload: str, reps: int, *extra: str
) -> dict[str, Any]:
    cmd = [str(python), str(script), "--reps", str(reps), "--only", workload, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed with exit status {proc.returncode}")
    summary: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary


def merge(into: dict[str, dict[str, Any]], key: str, summary: dict[str, Any]) -> None:
    have = into.setdefault(key, {**summary, "workloads": {}})
    have["workloads"].update(summary["workloads"])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    workloads = [w for w in args.only.split(",") if w]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; known: {','.join(WORKLOADS)}")
    root = Path(args.peer_venvs) if args.peer_venvs else REPO / ".peer-venvs"
    scripts = Path(args.peer_scripts) if args.peer_scripts else BENCH / "peers"
    peers = [p for p in PEERS if p.venv not in args.skip]
    pythons = {p.key: ensure_venv(root, p, create=not args.peer_venvs) for p in peers}
    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        log(
            f"load average {load_before[0]:.2f}: other processes are running, the figures "
            "will be noisy (quote only runs on an idle machine)"
        )
    results: dict[str, dict[str, Any]] = {}
    for wl in workloads:
        log(f"{wl}: superstep")
        merge(results, "superstep", run_script(sys.executable, OURS, wl, args.reps))
        for p in peers:
            if wl in p.workloads:
                log(f"{wl}: {p.name}")
                merge(results, p.key, run_script(pythons[p.key], scripts / p.script, wl, args.reps))
    if {"W1", "W1_fckpt"} <= set(workloads):
        # The checkpoint target is a ratio of two of our own workloads: measure it in
        # pairs run back to back, so that the machine's drift between the W1 and the
        # W1_fckpt rows (minutes apart, with the peers in between) does not enter it.
        log("W1 / W1_fckpt pairs: superstep, interleaved")
        pairs = run_script(sys.executable, OURS, "W1,W1_fckpt", args.reps, "--interleave")
        ratios = [
            f["us_per_superstep"] / w["us_per_superstep"]
            for w, f in zip(
                pairs["workloads"]["W1"]["runs"],
                pairs["workloads"]["W1_fckpt"]["runs"],
                strict=True,
            )
        ]
        results["superstep-pairs"] = {
            **pairs,
            "workloads": {
                "W1_fckpt/W1": {"median_ratio": statistics.median(ratios), "ratios": ratios}
            },
        }
    on_uvloop = [w for w in ("W3a", "W3b", "W3_floor") if w in workloads]
    if on_uvloop and not args.no_uvloop:
        # Not a comparison with the peers (their scripts run on asyncio's loop): what the
        # `superstep` command's default loop gives the timer-bound workloads.
        log(f"{','.join(on_uvloop)}: superstep on uvloop")
        results["superstep-uvloop"] = run_script(
            sys.executable, OURS, ",".join(on_uvloop), args.reps, "--loop", "uvloop"
        )
    return {
        "command": shlex.join([Path(sys.executable).name, "bench/run.py", *sys.argv[1:]]),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "reps": args.reps,
        "results": results,
    }


# -- the table ----------------------------------------------------------------------------------
Med = Callable[[str, str, str], float | None]


@dataclass(frozen=True)
class Row:
    workload: str
    metric: str
    key: str
    higher_is_better: bool = False
    fmt: str = "{:,.1f}"


ROWS = (
    Row("W1", "µs / superstep", "us_per_superstep"),
    Row("W1_ckpt", "µs / superstep", "us_per_superstep"),
    Row("W1_fckpt", "µs / superstep", "us_per_superstep"),
    Row("W2", "messages / s", "msgs_per_s", higher_is_better=True, fmt="{:,.0f}"),
    Row("W2", "ms / round", "ms_per_round", fmt="{:,.2f}"),
    Row("W3a", "wall s", "wall_s", fmt="{:,.3f}"),
    Row("W3b", "wall s", "wall_s", fmt="{:,.3f}"),
    Row("W3c", "wall s", "wall_s", fmt="{:,.3f}"),
    Row("W3_floor", "wall s", "wall_s", fmt="{:,.3f}"),
)


@dataclass(frozen=True)
class Target:
    text: str
    check: Callable[[Med], tuple[float, bool] | None]
    shown: str = "{:.2f}x"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _target(
    value: float | None, limit: float, *, at_least: bool = False
) -> tuple[float, bool] | None:
    if value is None:
        return None
    return value, (value >= limit if at_least else value <= limit)


TARGETS = (
    Target(
        "W1 µs/superstep ≤ 0.25x agent-framework",
        lambda m: _target(
            _ratio(
                m("superstep", "W1", "us_per_superstep"),
                m("agent-framework", "W1", "us_per_superstep"),
            ),
            0.25,
        ),
    ),
    Target(
        "W2 messages/s ≥ 3x agent-framework",
        lambda m: _target(
            _ratio(m("superstep", "W2", "msgs_per_s"), m("agent-framework", "W2", "msgs_per_s")),
            3.0,
            at_least=True,
        ),
    ),
    Target(
        "W3a wall ≤ 1.05x the 2 s ideal",
        lambda m: _target(m("superstep", "W3a", "ratio_vs_ideal"), 1.05),
    ),
    Target(
        "W3b wall ≤ 1.3x the 2 s ideal",
        lambda m: _target(m("superstep", "W3b", "ratio_vs_ideal"), 1.3),
    ),
    Target(
        "W3b peak RSS ≤ 60 MB",
        lambda m: _target(m("superstep", "W3b", "peak_rss_mb"), 60.0),
        shown="{:.1f} MB",
    ),
    Target(
        "W1_fckpt ≤ 2x our W1 (µs/superstep; median of back-to-back pairs)",
        lambda m: _target(
            m("superstep-pairs", "W1_fckpt/W1", "ratio")
            # records saved before the pairs were measured: the ratio of the rows
            or _ratio(
                m("superstep", "W1_fckpt", "us_per_superstep"),
                m("superstep", "W1", "us_per_superstep"),
            ),
            2.0,
        ),
    ),
)


def median_getter(record: dict[str, Any]) -> Med:
    results: dict[str, Any] = record["results"]

    def med(framework: str, workload: str, key: str) -> float | None:
        wl = results.get(framework, {}).get("workloads", {}).get(workload)
        if wl is None:
            return None
        value = wl.get(f"median_{key}")
        return float(value) if value is not None else None

    return med


def table(record: dict[str, Any]) -> str:
    med = median_getter(record)
    frameworks = ("superstep", "agent-framework", "langgraph")
    lines = [
        "| workload | metric | superstep | agent-framework | LangGraph | superstep ÷ AF "
        "| superstep ÷ LG | peak RSS MB (ours / AF / LG) |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]

    def cell(v: float | None, fmt: str) -> str:
        return fmt.format(v) if v is not None else "—"

    for row in ROWS:
        values = [med(f, row.workload, row.key) for f in frameworks]
        if values[0] is None and values[1] is None and values[2] is None:
            continue
        shown = [cell(v, row.fmt) for v in values]
        if row.key == "wall_s":
            ideal = [med(f, row.workload, "ratio_vs_ideal") for f in frameworks]
            shown = [
                s if r is None else f"{s} ({r:.2f}x ideal)"
                for s, r in zip(shown, ideal, strict=True)
            ]
        ratios = [cell(_ratio(values[0], values[i]), "{:.2f}x") for i in (1, 2)]
        rss = " / ".join(cell(med(f, row.workload, "peak_rss_mb"), "{:.0f}") for f in frameworks)
        lines.append(
            f"| {row.workload} | {row.metric} | {' | '.join(shown)} | {' | '.join(ratios)} | {rss} |"
        )
    lines += ["", "| target (ratios measured in one run) | measured | result |", "|---|--:|---|"]
    for t in TARGETS:
        got = t.check(med)
        if got is None:
            lines.append(f"| {t.text} | — | not measured |")
        else:
            value, ok = got
            lines.append(f"| {t.text} | {t.shown.format(value)} | {'pass' if ok else 'FAIL'} |")
    uv = record["results"].get("superstep-uvloop", {}).get("workloads", {})
    if uv:
        lines += [
            "",
            "Our runtime on uvloop, the `superstep` command's default loop (the peers' "
            "scripts, and the rows above, run on asyncio's; not a target):",
            "",
            "| workload | superstep, asyncio's loop | superstep, uvloop |",
            "|---|--:|--:|",
        ]
        for wl, got in uv.items():
            base = med("superstep", wl, "ratio_vs_ideal")
            lines.append(
                f"| {wl} | {cell(base, '{:.2f}x ideal')} "
                f"| {cell(got.get('median_ratio_vs_ideal'), '{:.2f}x ideal')} |"
            )
    pairs = record["results"].get("superstep-pairs", {}).get("workloads", {}).get("W1_fckpt/W1")
    if pairs:
        each = ", ".join(f"{r:.2f}x" for r in pairs["ratios"])
        lines += ["", f"W1_fckpt ÷ W1 in the back-to-back pairs: {each}."]
    return "\n".join(lines) + "\n"


def provenance(record: dict[str, Any]) -> str:
    before = ", ".join(f"{x:.2f}" for x in record["loadavg_before"])
    after = ", ".join(f"{x:.2f}" for x in record["loadavg_after"])
    m = record["machine"]
    versions = "; ".join(
        ", ".join(f"{d} {v}" for d, v in s.get("versions", {}).items())
        for k, s in record["results"].items()
        if k in ("superstep", "agent-framework", "langgraph")  # not our own runs again
    )
    return (
        f"Measured {record['started']} to {record['finished']} with `{record['command']}` "
        f"({record['reps']} repetition(s) per workload, medians), on {m['platform']}, "
        f"Python {m['python']}, {m['cpus']} CPUs. Load average before: {before}; after: {after}. "
        f"Versions: {versions}." + (f" {record['note']}" if record.get("note") else "") + "\n"
    )


def write_readme(record: dict[str, Any], source: Path) -> None:
    text = README.read_text(encoding="utf-8")
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"{README} lacks the {TABLE_START} ... {TABLE_END} markers")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    body = f"{provenance(record)}Raw results: `{source.relative_to(REPO)}`.\n\n{table(record)}"
    README.write_text(f"{head}{TABLE_START}\n{body}{TABLE_END}{tail}", encoding="utf-8")
    log(f"wrote the table into {README.relative_to(REPO)}")


def _save(record: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    log(f"raw results: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per workload (default 3)")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma list of workloads")
    ap.add_argument("--peer-venvs", metavar="DIR", help="use existing venvs DIR/af and DIR/lg")
    ap.add_argument(
        "--peer-scripts",
        metavar="DIR",
        help="where af_bench.py and lg_bench.py are (default: bench/peers, vendored copies)",
    )
    ap.add_argument(
        "--skip",
        default="",
        help="comma list of peers not to run: af, lg (for a quick look at our own numbers)",
    )
    ap.add_argument(
        "--setup", action="store_true", help="only create or check the peer venvs, then exit"
    )
    ap.add_argument(
        "--no-uvloop",
        action="store_true",
        help="skip the extra runs of W3a, W3b and W3_floor on uvloop",
    )
    ap.add_argument("--from-json", metavar="FILE", help="print the table of a saved run")
    ap.add_argument("--write-readme", action="store_true", help="put the table in bench/README.md")
    ap.add_argument("--note", help="a remark on the conditions, kept with the results")
    args = ap.parse_args()
    args.skip = {s for s in args.skip.split(",") if s}

    if args.setup:
        root = Path(args.peer_venvs) if args.peer_venvs else REPO / ".peer-venvs"
        for p in PEERS:
            log(f"{p.name}: {ensure_venv(root, p, create=not args.peer_venvs)}")
        return
    if args.from_json:
        source = Path(args.from_json).resolve()
        record = json.loads(source.read_text(encoding="utf-8"))
    else:
        record = measure(args)
        stamp = record["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
        source = RESULTS / f"{stamp}.json"
    if args.note:
        record["note"] = args.note
    if args.note or not args.from_json:
        _save(record, source)
    print(provenance(record))
    print(table(record))
    if args.write_readme:
        write_readme(record, source)


if __name__ == "__main__":
    main()
