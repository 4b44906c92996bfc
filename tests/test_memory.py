"""fashion_mnist.memory: glibc keeps the large blocks a training step frees, for the next step.

Checked through glibc's own accounting (mallinfo) in a fresh process, not through timings or
page-fault counts, which depend on the kernel's settings (huge pages) and the machine's load.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from fashion_mnist import memory

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only")

# Allocates and frees one 16 MiB block (an activation-sized buffer) and prints what glibc's
# accounting says: kept, MiB newly mapped outside the heap while the block is held, and after it
# is freed, MiB still newly mapped and MiB free in the heap for the next allocation. (Free heap
# memory is not compared with before: the block may take in a little that was free already.)
_PROBE = """
import ctypes, sys
from fashion_mnist.memory import keep_freed_memory

libc = ctypes.CDLL(None)
# mallinfo2 (glibc >= 2.33) counts in size_t; older glibc has only mallinfo, in int (enough here)
field = ctypes.c_size_t if hasattr(libc, "mallinfo2") else ctypes.c_int
class MallInfo(ctypes.Structure):
    _fields_ = [(name, field) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo = libc.mallinfo2 if hasattr(libc, "mallinfo2") else libc.mallinfo
mallinfo.restype = MallInfo
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

kept = keep_freed_memory() if sys.argv[1] == "keep" else None
MiB = 2**20
before = mallinfo()
block = libc.malloc(16 * MiB)
assert block, "malloc failed"
ctypes.memset(block, 1, 16 * MiB)
held = mallinfo()
libc.free(block)
freed = mallinfo()
print(kept, (held.hblkhd - before.hblkhd) // MiB, (freed.hblkhd - before.hblkhd) // MiB,
      freed.fordblks // MiB)
"""


def _probe(mode: str, extra_env: dict[str, str] | None = None) -> tuple[str, int, int, int]:
    env = {**memory.without_malloc_settings(os.environ), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], env={**env, **(extra_env or {})},
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    kept, mapped, still_mapped, kept_in_heap = done.stdout.split()
    return kept, int(mapped), int(still_mapped), int(kept_in_heap)


def test_by_default_glibc_maps_a_large_block_and_hands_it_back():
    # what keep_freed_memory is for: every step would fault this memory in again
    _, mapped, still_mapped, kept_in_heap = _probe("default")
    assert mapped >= 16 and still_mapped == 0 and kept_in_heap < 16, (mapped, kept_in_heap)


def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them():
    kept, mapped, _, kept_in_heap = _probe("keep")
    assert kept == "True"
    assert mapped == 0 and kept_in_heap >= 16, (mapped, kept_in_heap)


def test_the_same_thresholds_as_environment_variables_do_the_same():
    # how the LeNet benchmarks set them for their workers
    env = memory.with_malloc_settings({})
    assert env == {name: str(value) for name, value in memory.MALLOC_THRESHOLDS.items()}
    _, mapped, _, kept_in_heap = _probe("default", env)
    assert mapped == 0 and kept_in_heap >= 16, (mapped, kept_in_heap)


@pytest.mark.parametrize("name, value", [("MALLOC_TRIM_THRESHOLD_", "131072"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")])  # fmt: skip
def test_thresholds_the_user_set_are_left_alone(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert memory.keep_freed_memory() is False


def test_without_malloc_settings_drops_what_changes_malloc():
    env = {"PATH": "/bin", "MALLOC_ARENA_MAX": "2", "GLIBC_TUNABLES": "x", "LD_PRELOAD": "je.so"}
    assert memory.without_malloc_settings(env) == {"PATH": "/bin"}


def test_the_allocator_benchmark_records_both_modes(tmp_path):
    # its speed figures come from `make bench`; here only that it runs and records what it says
    pytest.importorskip("torch")
    record = tmp_path / "bench.json"
    bench = Path(__file__).resolve().parents[1] / "experiments" / "malloc" / "bench_malloc.py"
    cmd = [sys.executable, str(bench), "--json", "--rounds", "1", "--steps", "2", "--warmup", "1",
           "--record", str(record)]  # fmt: skip
    # torch's thread count, not NumPy's BLAS one, is the one that describes these measurements
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "2"}
    result = json.loads(
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    )
    assert set(result) == {"default", "kept", "speedup"} and result["speedup"] > 0
    for mode in ("default", "kept"):
        assert result[mode]["images_per_s"] > 0 and result[mode]["faults_per_step"] >= 0
    saved = json.loads(record.read_text())
    assert saved["results"] == result and (saved["rounds"], saved["steps"]) == (1, 2)
    assert saved["provenance"]["git_commit"]
    assert saved["threads"] == result["kept"]["threads"] == 1


@pytest.mark.parametrize("option", ["--rounds=0", "--steps=0", "--warmup=-1"])
def test_benchmark_options_must_be_counts(option):
    import argparse

    from fashion_mnist.runlog import benchmark_options

    parser = argparse.ArgumentParser()
    benchmark_options(parser, steps=10, warmup=1)
    with pytest.raises(SystemExit):
        parser.parse_args([option])
    assert parser.parse_args(["--warmup=0"]).warmup == 0
