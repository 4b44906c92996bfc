"""Run logs in the original report's line formats, a CSV beside each, and metrics.json.

The human ``.log`` keeps the original's lines, e.g.
``2025-04-20 13:33:44.029, Step: 1/5000, Loss: 3.2231, Accuracy: 0.0469`` and
``Epoch [1/20]  Train Loss: 0.4571  Acc: 0.8349  Test Loss: 0.3226  Acc: 0.8797``; the ``.csv``
holds the same records for machines. Both are rewritten atomically at each flush, so a crash
never leaves half a line, and a resumed run keeps the records up to its checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from threadpoolctl import threadpool_info

from . import REPO_ROOT
from .files import write_json, write_text

STEP_FIELDS = ("time", "step", "max_steps", "loss", "accuracy")
MAX_CHANGED_LISTED = 50
EPOCH_FIELDS = (
    "time", "epoch", "epochs", "train_loss", "train_acc", "val_loss", "val_acc",
    "test_loss", "test_acc", "lr", "seconds",
)  # fmt: skip
_INT_FIELDS = {"step", "max_steps", "epoch", "epochs"}

_STEP_RE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}), Step: (?P<step>\d+)/(?P<max_steps>\d+), "
    r"Loss: (?P<loss>\S+), Accuracy: (?P<accuracy>\S+)$"
)
_EPOCH_RE = re.compile(
    r"^Epoch \[(?P<epoch>\d+)/(?P<epochs>\d+)\]  Train Loss: (?P<train_loss>\S+)  "
    r"Acc: (?P<train_acc>\S+)(?:  Test Loss: (?P<test_loss>\S+)  Acc: (?P<test_acc>\S+))?"
    r"(?:  Val Loss: (?P<val_loss>\S+)  Acc: (?P<val_acc>\S+))?$"
)


def now() -> str:
    """Local time with milliseconds, as in the original's step log."""
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def step_line(r: dict) -> str:
    return (
        f"{r['time']}, Step: {r['step']}/{r['max_steps']}, "
        f"Loss: {r['loss']:.4f}, Accuracy: {r['accuracy']:.4f}"
    )


def epoch_line(r: dict) -> str:
    """The original's epoch line; validation metrics follow it when present."""
    line = f"Epoch [{r['epoch']}/{r['epochs']}]  Train Loss: {r['train_loss']:.4f}  Acc: {r['train_acc']:.4f}"
    if r.get("test_loss") is not None:
        line += f"  Test Loss: {r['test_loss']:.4f}  Acc: {r['test_acc']:.4f}"
    if r.get("val_loss") is not None:
        line += f"  Val Loss: {r['val_loss']:.4f}  Acc: {r['val_acc']:.4f}"
    return line


def _typed(record: dict) -> dict:
    out = {}
    for key, value in record.items():
        if value in (None, ""):
            out[key] = None
        elif key == "time":
            out[key] = value
        elif key in _INT_FIELDS:
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out


def parse_log_line(line: str) -> dict:
    """Parse a step or epoch line back into a record; ValueError for anything else."""
    for pattern in (_STEP_RE, _EPOCH_RE):
        match = pattern.match(line.rstrip("\n"))
        if match:
            return _typed(match.groupdict())
    raise ValueError(f"not a step or epoch log line: {line!r}")


def read_log(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [parse_log_line(line) for line in f if line.strip()]


def read_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return [_typed(row) for row in csv.DictReader(f)]


class RunLog:
    """Step or epoch records, written as the original's ``.log`` lines and a ``.csv``.

    ``keep_until`` (a step or epoch) reloads the existing records up to it: the log of a run
    resumed from a checkpoint then reads as if it had never stopped.
    """

    def __init__(self, folder, name: str, kind: str = "step", flush_every: int = 100,
                 keep_until: int | None = None, echo: bool = False):  # fmt: skip
        if kind not in ("step", "epoch"):
            raise ValueError(f"kind must be 'step' or 'epoch', got {kind!r}")
        folder = Path(folder)
        self.log_path, self.csv_path = folder / f"{name}.log", folder / f"{name}.csv"
        self.kind, self.flush_every, self.echo = kind, flush_every, echo
        self.fields = STEP_FIELDS if kind == "step" else EPOCH_FIELDS
        self.records: list[dict] = []
        if keep_until is not None and self.csv_path.is_file():
            self.records = [r for r in read_csv(self.csv_path) if r[kind] <= keep_until]
        self._format = step_line if kind == "step" else epoch_line

    def append(self, **record) -> str:
        record.setdefault("time", now())
        unknown = set(record) - set(self.fields)
        if unknown:
            raise KeyError(f"{self.csv_path.name}: unknown fields {sorted(unknown)}")
        self.records.append({f: record.get(f) for f in self.fields})
        line = self._format(self.records[-1])
        if self.echo:
            print(line)
        if len(self.records) % self.flush_every == 0:
            self.flush()
        return line

    def flush(self) -> None:
        write_text(self.log_path, "".join(self._format(r) + "\n" for r in self.records))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records)
        write_text(self.csv_path, buffer.getvalue())

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _gpu_name() -> str | None:
    torch = sys.modules.get("torch")  # only a run that uses torch can have used a GPU
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def provenance(wall_seconds: float | None = None) -> dict:
    """Where and with what a result was produced: commit, date, hardware, library versions."""
    diff = _git("diff", "--name-only", "HEAD")  # tracked files that differ, staged or not
    changed = diff.splitlines() if diff else []
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(changed) if diff is not None else None,
        # which tracked files differ: a notebook rewriting its committed figures and logs makes
        # the tree dirty without any code having changed
        "git_changed": changed[:MAX_CHANGED_LISTED],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu": _gpu_name(),
        # the OS and architecture, not the kernel's release string: that names a host build,
        # which explains no result
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 2),
    }


def blas_threads() -> int | None:
    """Threads of the BLAS libraries loaded so far (NumPy's; torch brings its own when imported);
    None when threadpoolctl finds no BLAS."""
    threads = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return max(threads, default=None)


def cpu() -> str:
    """The processor and its core count, e.g. 'AMD EPYC (2 cores)'."""
    return f"{_cpu_model()} ({os.cpu_count()} cores)"


def hardware() -> str:
    """One line naming the hardware a result comes from, for tables: the GPU's name when there
    is one, else the CPU's."""
    return _gpu_name() or cpu()


def _count(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def benchmark_options(parser: argparse.ArgumentParser, steps: int, warmup: int) -> None:
    """The options of every script in benchmarks/: rounds, steps, warm-up, --json and --record."""
    parser.add_argument("--rounds", type=_count(1), default=5)
    parser.add_argument("--steps", type=_count(1), default=steps, help="timed steps per measurement")
    parser.add_argument("--warmup", type=_count(0), default=warmup, help="untimed steps first")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--record", metavar="PATH",
                        help="also save the results with the settings and provenance as JSON")  # fmt: skip


def worker_result(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run one benchmark measurement as ``cmd`` in a fresh process; the JSON object it printed
    last on stdout. A failing worker's traceback goes straight to the terminal."""
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def alternate(modes: tuple[str, ...], rounds: int, measure: Callable[[str], dict]
              ) -> dict[str, list[dict]]:  # fmt: skip
    """``measure(mode)`` for each mode in each of ``rounds`` rounds, in reverse order every other
    round (these machines are noisy: neither side always runs first); each mode's results."""
    runs = {mode: [] for mode in modes}
    for r in range(rounds):
        for mode in modes if r % 2 == 0 else reversed(modes):
            runs[mode].append(measure(mode))
    return runs


def run_benchmark(args: argparse.Namespace, measure_all: Callable[[], dict],
                  table: Callable[[dict], str], threads: Callable[[dict], int]) -> None:  # fmt: skip
    """Print ``measure_all()``'s results as ``table(results)`` (or JSON with --json) and, with
    --record, save them with the settings, the thread count the measurements ran with
    (``threads(results)``) and provenance."""
    began = time.perf_counter()
    results = measure_all()
    print(json.dumps(results) if args.json else table(results))
    if args.record:
        write_json(args.record, {
            "rounds": args.rounds, "steps": args.steps, "warmup": args.warmup,
            "threads": threads(results), "results": results,
            "provenance": provenance(time.perf_counter() - began),
        })  # fmt: skip


def benchmark_main(argv: list[str] | None, doc: str, modes: tuple[str, ...], steps: int,
                   warmup: int, measure: Callable[[str, int, int], dict],
                   benchmark: Callable[[int, int, int], dict],
                   table: Callable[[dict, int, int], str], threads: Callable[[dict], int]) -> None:  # fmt: skip
    """The command line of a benchmark that measures each of ``modes`` in fresh processes of its
    own script. A worker (``--worker MODE``, for the script itself) prints
    ``measure(mode, steps, warmup)`` as JSON; otherwise ``benchmark(rounds, steps, warmup)``
    runs the workers and its results are shown as ``table(results, rounds, steps)`` and recorded
    (``run_benchmark``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    benchmark_options(parser, steps=steps, warmup=warmup)
    parser.add_argument("--worker", choices=modes, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.steps, args.warmup)))
        return
    run_benchmark(args, lambda: benchmark(args.rounds, args.steps, args.warmup),
                  lambda results: table(results, args.rounds, args.steps), threads)  # fmt: skip


def write_metrics(path, metrics: dict, wall_seconds: float | None = None) -> dict:
    """Write ``metrics`` plus provenance to ``path`` (JSON, atomically); returns what was written.

    A ``provenance`` already in ``metrics`` (a record of a run made elsewhere) is kept.
    """
    kept = "provenance" in metrics
    out = {**metrics, "provenance": metrics["provenance"] if kept else provenance(wall_seconds)}
    write_json(path, out)
    return out


@contextlib.contextmanager
def logged_steps(folder, name: str, max_steps: int, start: int = 0, print_every: int = 500):
    """Yield an ``on_step(step, loss, accuracy)`` callback that logs every step and drives a bar.

    Every step goes to ``folder/name.log`` (the original's format) and ``name.csv``; every
    ``print_every``-th line is also printed under the progress bar. ``start`` is the step a
    resumed run continues from: the records after it are dropped, then written again.
    """
    from tqdm.auto import tqdm

    with RunLog(folder, name, keep_until=start) as log, tqdm(
        total=max_steps, initial=start, desc=name, unit="step"
    ) as bar:

        def on_step(step: int, loss: float, accuracy: float) -> None:
            line = log.append(step=step, max_steps=max_steps, loss=loss, accuracy=accuracy)
            bar.update(1)
            if step % print_every == 0 or step == 1:
                bar.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}")
                tqdm.write(line)

        yield on_step
