"""Wall time of each ``augpipe`` command as a user runs it, against its target on a quiet 2-core machine.

    python bench/cli.py                            # every command, 5 runs each (`run` 3): 2 to 5 minutes
    python bench/cli.py --runs 3 --only models,preview,doctor
    python bench/cli.py --json bench/results/cli.json

Each run is a fresh process, timed from spawn to exit; a figure is the median of the runs (min and max
shown). Commands run from the checkout's root in the caller's environment less its PREFECT_* variables
(``--keep-prefect-env`` keeps them), so that by default the figures are those of a user without a
Prefect server; the header says which mode was measured, as Prefect itself reads its settings. Every
output goes to a fresh temporary folder (``--out``), so nothing is reused from an earlier run. A command
that fails or hangs ends the benchmark with exit status 1 and the command's last lines of output.

``augpipe prepare`` has a relative target: within 1.5x of the same preparation done by
``pipeline.prepare.prepare`` in a ``python -c`` process (the library's own time plus the interpreter's
start), on 2,000 generated 100x100 JPEGs in two class folders. The two alternate run by run, so that on
a shared machine both meet the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
QUIET_LOAD_PER_CORE = 0.5  # a 1-minute load average above this per usable CPU: not a quiet machine
PREPARE_RATIO_TARGET = 1.5
RUN_RUNS_DEFAULT = 3  # `augpipe run` trains 8 epochs: half a minute or more per run
TIMEOUT_SECONDS = 600  # a hung command fails the benchmark instead of holding it forever
TAIL_LINES = 20
JPEG_COUNT, JPEG_SIDE, JPEG_CLASSES = 2000, 100, ("circle", "square")
# The baseline of `augpipe prepare SRC --out OUT`: the library call with the CLI's defaults.
PREPARE_IN_PYTHON = (
    "import os, sys\n"
    "import pipeline.prepare\n"
    "from pipeline.config import PrepareConfig\n"
    "pipeline.prepare.prepare(PrepareConfig(source=sys.argv[1], out=sys.argv[2]), workers=os.cpu_count())\n"
)
API_URL_PROBE = (
    "from prefect.settings import get_current_settings; print(get_current_settings().api.url or '')"
)


class Command(NamedTuple):
    """One command line to time. ``argv`` is given a fresh folder, not yet made, for its output."""

    label: str
    argv: Callable[[Path], list[str]]
    target: float | None  # seconds, for the median; None: no target of its own


class Timing(NamedTuple):
    command: Command
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


class CommandFailed(Exception):
    """A timed command exited non-zero or hung: its figures would mean nothing."""


def command_groups(augpipe: str, images: Path) -> dict[str, list[Command]]:
    """What ``--only`` selects, in the order they run: each name's commands alternate run by run."""
    python = sys.executable
    return {
        "python": [Command("python -c pass (interpreter start)", lambda out: [python, "-c", "pass"], None)],
        "models": [Command("augpipe models", lambda out: [augpipe, "models"], 1.0)],
        "preview": [
            Command("augpipe preview (digits)", lambda out: [augpipe, "preview", "--out", str(out)], 6.0)
        ],
        "doctor": [Command("augpipe doctor", lambda out: [augpipe, "doctor"], 8.0)],
        "prepare": [
            Command(
                "prepare() in python -c (baseline)",
                lambda out: [python, "-c", PREPARE_IN_PYTHON, str(images), str(out)],
                None,
            ),
            Command(
                "augpipe prepare", lambda out: [augpipe, "prepare", str(images), "--out", str(out)], None
            ),
        ],
        "run": [Command("augpipe run (8 epochs)", lambda out: [augpipe, "run", "--out", str(out)], 25.0)],
    }


def find_augpipe() -> str:
    """The ``augpipe`` installed beside this interpreter (the checkout's venv), else the one on PATH."""
    found = shutil.which("augpipe", path=str(Path(sys.executable).parent)) or shutil.which("augpipe")
    if found is None:
        print(
            "bench/cli.py: no `augpipe` command beside this Python or on PATH: pip install -e .",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return found


def user_environment(keep_prefect: bool) -> tuple[dict[str, str], list[str]]:
    """The caller's environment, less its PREFECT_* variables unless ``keep_prefect``; and those dropped."""
    dropped = [] if keep_prefect else sorted(k for k in os.environ if k.startswith("PREFECT_"))
    return {k: v for k, v in os.environ.items() if k not in dropped}, dropped


def prefect_api_url(env: dict[str, str]) -> str | None:
    """The API URL that Prefect sees in ``env`` from the checkout's root (environment, profile, .env or
    prefect.toml), or None: the commands then run without a server."""
    proc = subprocess.run(
        [sys.executable, "-c", API_URL_PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    lines = proc.stdout.strip().splitlines()
    return (lines[-1] or None) if proc.returncode == 0 and lines else None


def write_jpegs(folder: Path) -> None:
    """JPEG_COUNT noise images, each with a filled circle or square, half in each class folder."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for name in JPEG_CLASSES:
        (folder / name).mkdir(parents=True)
    for i in range(JPEG_COUNT):
        shape = JPEG_CLASSES[i % 2]
        image = rng.integers(0, 256, (JPEG_SIDE, JPEG_SIDE, 3), dtype=np.uint8)
        x, y = (int(v) for v in rng.integers(JPEG_SIDE // 4, 3 * JPEG_SIDE // 4, 2))
        r = int(rng.integers(JPEG_SIDE // 10, JPEG_SIDE // 4))
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        if shape == "circle":
            cv2.circle(image, (x, y), r, color, thickness=-1)
        else:
            cv2.rectangle(image, (x - r, y - r), (x + r, y + r), color, thickness=-1)
        path = folder / shape / f"{i:04d}.jpg"
        if not cv2.imwrite(str(path), image):
            raise OSError(f"could not write {path}")


def time_once(argv: list[str], env: dict[str, str], log: Path) -> float:
    """Seconds from spawning ``argv`` to its exit; raises CommandFailed if it fails or hangs."""
    # Output goes to a file, not a pipe: a child left holding a pipe open would delay its reader past
    # the command's exit, and a full pipe would stall the command.
    with log.open("wb") as output:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            code = proc.wait(TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.poll() is None:  # hung, or Ctrl-C here: SIGTERM lets it clean up, then SIGKILL
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        seconds = time.perf_counter() - start
    if code != 0:
        how = f"did not finish in {TIMEOUT_SECONDS} s" if code is None else f"failed with exit status {code}"
        tail = log.read_text(errors="replace").rstrip().splitlines()[-TAIL_LINES:]
        raise CommandFailed(
            f"`{shlex.join(argv)}` {how}; its last {len(tail)} lines of output:\n"
            + "\n".join(f"  | {line}" for line in tail)
        )
    return seconds


def measure(
    name: str, commands: list[Command], runs: int, env: dict[str, str], scratch: Path
) -> list[Timing]:
    """``runs`` runs of each command, alternating, each into a fresh output folder removed afterwards."""
    timings = [Timing(c, []) for c in commands]
    for run in range(1, runs + 1):
        for timing in timings:
            out = scratch / f"{name}-{run}"
            try:
                seconds = time_once(timing.command.argv(out), env, scratch / "output.log")
            except CommandFailed as err:
                raise CommandFailed(f"run {run} of {runs}: {err}") from None
            shutil.rmtree(out, ignore_errors=True)
            timing.seconds.append(seconds)
            print(f"  {timing.command.label:40} run {run} of {runs}: {seconds:6.2f} s", flush=True)
    return timings


def machine_facts() -> dict[str, object]:
    return {
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
    }


def print_table(timings: list[Timing], targets: dict[str, float | None]) -> dict[str, bool | None]:
    """The figures, one row per command; returns each command's verdict (None: no target)."""
    header = ("command", "runs", "min", "median", "max", "target", "result")
    rows, verdicts = [header], {}
    for t in timings:
        target = targets[t.command.label]
        verdicts[t.command.label] = None if target is None else t.median <= target
        result = {None: "-", True: "PASS", False: "FAIL"}[verdicts[t.command.label]]
        figures = (f"{min(t.seconds):.2f} s", f"{t.median:.2f} s", f"{max(t.seconds):.2f} s")
        shown = "-" if target is None else f"<= {target:.2f} s"
        rows.append((t.command.label, str(len(t.seconds)), *figures, shown, result))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    rows.insert(1, tuple("-" * w for w in widths))
    for row in rows:
        print(
            "  "
            + "  ".join(
                [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
            )
        )
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = list(command_groups("augpipe", Path()))
    parser.add_argument("--runs", type=int, default=5, metavar="N", help="runs per command (default 5)")
    parser.add_argument(
        "--run-runs", type=int, metavar="N",
        help=f"runs of `augpipe run` (default: --runs, at most {RUN_RUNS_DEFAULT})",
    )  # fmt: skip
    parser.add_argument("--only", metavar="NAME[,NAME]", help=f"some of {','.join(names)} (default: all)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH")
    parser.add_argument(
        "--keep-prefect-env", action="store_true",
        help="keep the caller's PREFECT_* variables (default: dropped, to measure the no-server path)",
    )  # fmt: skip
    args = parser.parse_args()
    only = names if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := sorted(set(only) - set(names)):
        parser.error(f"--only accepts {', '.join(names)}, but got {', '.join(unknown)}")
    run_runs = args.run_runs or min(args.runs, RUN_RUNS_DEFAULT)
    if min(args.runs, run_runs) < 1:
        parser.error(f"--runs and --run-runs must be at least 1, but got {args.runs} and {run_runs}")

    augpipe = find_augpipe()
    env, dropped = user_environment(args.keep_prefect_env)
    machine = machine_facts()
    cpus, load = machine["cpus_usable"], machine["load_average_start"]
    print(f"augpipe command-line benchmark, {datetime.now().isoformat(timespec='seconds')}")
    print(
        f"machine: {cpus} CPUs usable (os.cpu_count() {machine['cpu_count']}), Python {machine['python']}, "
        f"load average {' / '.join(map(str, load))} (1 / 5 / 15 min)"
    )
    if load[0] > QUIET_LOAD_PER_CORE * cpus:
        print(
            f"warning: not a quiet machine (1-minute load average {load[0]} > {QUIET_LOAD_PER_CORE} per "
            f"core on {cpus} CPUs): figures are pessimistic"
        )
    if cpus != 2:
        print(f"note: the targets are for 2 cores; this process may use {cpus}")
    api_url = prefect_api_url(env)
    kept = "kept" if args.keep_prefect_env else f"dropped: {', '.join(dropped) or 'none were set'}"
    mode = (
        f"PREFECT_API_URL = {api_url} (the server path)" if api_url else "PREFECT_API_URL not set (no server)"
    )
    print(f"mode: {mode}; the caller's PREFECT_* variables {kept}")
    print(f"augpipe: {augpipe}, run from {ROOT}")
    counts = {name: run_runs if name == "run" else args.runs for name in only}
    print(
        "runs: " + ", ".join(f"{name} {n}" for name, n in counts.items())
        + (f" (`run` fewer by default, at most {RUN_RUNS_DEFAULT}: --run-runs N)" if "run" in only else "")
        + "; figure = median, each run a fresh process timed from spawn to exit"
    )  # fmt: skip

    timings: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="augpipe-bench-cli-") as tmp:
        scratch, images = Path(tmp), Path(tmp) / "jpegs"
        if "prepare" in only:
            start = time.perf_counter()
            write_jpegs(images)
            print(
                f"wrote {JPEG_COUNT} {JPEG_SIDE}x{JPEG_SIDE} JPEGs (noise and a shape, classes "
                f"{' and '.join(JPEG_CLASSES)}) to {images} in {time.perf_counter() - start:.1f} s"
            )
        groups = command_groups(augpipe, images)
        try:
            for name in only:
                print(f"{name}:", flush=True)
                timings += measure(name, groups[name], counts[name], env, scratch)
        except CommandFailed as err:
            print(f"bench/cli.py: {err}", file=sys.stderr)
            return 1

    targets = {t.command.label: t.command.target for t in timings}
    by_label = {t.command.label: t for t in timings}
    baseline, cli = (by_label.get(c.label) for c in groups["prepare"])
    if baseline and cli:
        targets[cli.command.label] = PREPARE_RATIO_TARGET * baseline.median
    machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    print()
    verdicts = print_table(timings, targets)
    prepare: dict[str, object] = {}
    if baseline and cli:
        ratio = cli.median / baseline.median
        prepare = {
            "images": JPEG_COUNT, "side": JPEG_SIDE, "baseline_median_s": baseline.median,
            "cli_median_s": cli.median, "ratio": ratio, "target_ratio": PREPARE_RATIO_TARGET,
            "pass": ratio <= PREPARE_RATIO_TARGET,
        }  # fmt: skip
        print(
            f"  prepare: augpipe prepare median {cli.median:.2f} s / prepare() in python -c median "
            f"{baseline.median:.2f} s = {ratio:.2f}x (target <= {PREPARE_RATIO_TARGET}x): "
            + ("PASS" if prepare["pass"] else "FAIL")
        )
    end_load = " / ".join(map(str, machine["load_average_end"]))
    print(f"  load average at the end: {end_load} (the runs' own load included)")
    if args.json:
        results = [
            {
                "command": t.command.label,
                "argv": shlex.join(t.command.argv(Path("OUT"))),
                "seconds": t.seconds,
                "min_s": min(t.seconds),
                "median_s": t.median,
                "max_s": max(t.seconds),
                "target_s": targets[t.command.label],
                "pass": verdicts[t.command.label],
            }
            for t in timings
        ]
        record = {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": shlex.join(["python", "bench/cli.py", *sys.argv[1:]]),
            "machine": machine, "prefect_api_url": api_url, "prefect_env_dropped": dropped,
            "results": results, "prepare": prepare or None,
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the command running was stopped too (time_once), and the scratch removed
        print("bench/cli.py: interrupted", file=sys.stderr)
        sys.exit(130)  # 128 + SIGINT, as the commands themselves exit
