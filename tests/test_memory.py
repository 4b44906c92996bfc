"""fashion_mnist.memory: glibc keeps the large blocks a training step frees, for the next step.

Checked through glibc's own accounting (mallinfo2) in a fresh process, not through timings or
page-fault counts, which depend on the kernel's settings (huge pages) and the machine's load.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from fashion_mnist import memory

pytestmark = [
    pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only"),
    pytest.mark.skipif(
        platform.libc_ver()[0] == "glibc" and not hasattr(ctypes.CDLL(None), "mallinfo2"),
        reason="glibc older than 2.33 has no mallinfo2 to read its accounting",
    ),
]

# Allocates and frees one 16 MiB block (an activation-sized buffer) and prints where glibc served it
# from and what it kept: kept, MiB mapped outside the heap while held, MiB still free in the heap.
_PROBE = """
import ctypes, sys
from fashion_mnist.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
MiB = 2**20
block = libc.malloc(16 * MiB)
ctypes.memset(block, 1, 16 * MiB)
mapped = libc.mallinfo2().hblkhd
libc.free(block)
print(kept, mapped // MiB, libc.mallinfo2().fordblks // MiB)
"""


def _probe(mode: str, extra_env: dict[str, str] | None = None) -> tuple[str, int, int]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"
    }
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], env={**env, **(extra_env or {})},
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    kept, mapped, free_in_heap = done.stdout.split()
    return kept, int(mapped), int(free_in_heap)


def test_by_default_glibc_maps_a_large_block_and_hands_it_back():
    # what keep_freed_memory is for: every step would fault this memory in again
    _, mapped, free_in_heap = _probe("default")
    assert mapped >= 16 and free_in_heap < 16, (mapped, free_in_heap)


def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them():
    kept, mapped, free_in_heap = _probe("keep")
    assert kept == "True"
    assert mapped < 16 and free_in_heap >= 16, (mapped, free_in_heap)


def test_the_same_thresholds_as_environment_variables_do_the_same():
    # how the LeNet benchmark sets them for both of its workers
    env = {name: str(value) for name, value in memory.MALLOC_THRESHOLDS.items()}
    _, mapped, free_in_heap = _probe("default", env)
    assert mapped < 16 and free_in_heap >= 16, (mapped, free_in_heap)


@pytest.mark.parametrize("name, value", [("MALLOC_TRIM_THRESHOLD_", "131072"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072")])  # fmt: skip
def test_thresholds_the_user_set_are_left_alone(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert memory.keep_freed_memory() is False


def test_the_allocator_benchmark_records_both_modes(tmp_path):
    # its speed figures come from `make bench`; here only that it runs and records what it says
    record = tmp_path / "bench.json"
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_malloc.py"
    cmd = [sys.executable, str(bench), "--json", "--rounds", "1", "--steps", "2", "--warmup", "1",
           "--record", str(record)]  # fmt: skip
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    assert set(result) == {"default", "kept", "speedup"} and result["speedup"] > 0
    for mode in ("default", "kept"):
        assert result[mode]["images_per_s"] > 0 and result[mode]["faults_per_step"] >= 0
    saved = json.loads(record.read_text())
    assert saved["results"] == result and (saved["rounds"], saved["steps"]) == (1, 2)
    assert saved["provenance"]["git_commit"]
