"""glibc's malloc tuned for training loops that free and reallocate the same large buffers."""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Mapping

# Blocks below 32 MiB (glibc's largest mmap threshold on 64-bit systems) come from the heap,
# which keeps up to 512 MiB of freed memory for reuse instead of handing it back to the system.
MALLOC_THRESHOLDS = {"MALLOC_MMAP_THRESHOLD_": 32 * 2**20, "MALLOC_TRIM_THRESHOLD_": 512 * 2**20}
_MALLOPT_PARAMS = {"MALLOC_MMAP_THRESHOLD_": -3, "MALLOC_TRIM_THRESHOLD_": -1}  # glibc's malloc.h


def keep_freed_memory() -> bool:
    """Let glibc keep the large buffers a training step frees, for the next step to reuse.

    By default glibc hands them back to the operating system, and every step faults them in again
    page by page: ``experiments/malloc/bench_malloc.py`` (``make -C experiments malloc``) measures what fixing the two
    thresholds saves PyTorch training with its evaluation. Process-wide, like the environment
    variables of the same names; True when applied, False where the C library is not glibc or the
    environment already tunes its malloc (MALLOC_*_THRESHOLD_, GLIBC_TUNABLES).
    """
    user_set = any(name in os.environ for name in MALLOC_THRESHOLDS)
    user_set |= "malloc." in os.environ.get("GLIBC_TUNABLES", "")
    if platform.libc_ver()[0] != "glibc" or user_set:
        return False
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    return all(
        libc.mallopt(_MALLOPT_PARAMS[name], value) == 1 for name, value in MALLOC_THRESHOLDS.items()
    )


def without_malloc_settings(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` less what would change a child process's malloc: MALLOC_* and GLIBC_TUNABLES, and
    LD_PRELOAD (a preloaded jemalloc or tcmalloc replaces glibc's malloc; mallopt would then tune
    a malloc nobody calls). For measuring glibc's defaults against ``keep_freed_memory``."""
    dropped = ("GLIBC_TUNABLES", "LD_PRELOAD")
    return {k: v for k, v in env.items() if not k.startswith("MALLOC_") and k not in dropped}


def with_malloc_settings(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus :data:`MALLOC_THRESHOLDS` as environment variables: a child process's glibc
    then keeps freed memory from its start, as ``keep_freed_memory`` does (the benchmarks' workers)."""
    return {**env, **{name: str(value) for name, value in MALLOC_THRESHOLDS.items()}}
