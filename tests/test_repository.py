"""Checks of what is committed: no file carries the path of the machine that produced it."""

from __future__ import annotations

import re
import subprocess

import pytest

from fashion_mnist import REPO_ROOT
from fashion_mnist.runlog import provenance

# An absolute path into a checkout of this project, wherever that checkout was: a folder of
# the repository after it (…/cnn-by-myself/…, …/runs/…), or a virtual environment in it.
CHECKOUT_PATH = re.compile(
    r"(?<![\w.~])/(?:[\w.-]+/)+(?:cnn-by-myself|cnn-by-pytorch|fashion_mnist|runs|report|"
    r"experiments|benchmarks|\.venv)/"
)


def committed_files() -> list:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True,
                                check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = (REPO_ROOT / name for name in filter(None, listed.decode().split("\0")))
    return [path for path in paths if path.is_file()]


def committed_text_files() -> list:
    return [path for path in committed_files() if b"\0" not in path.read_bytes()[:8192]]


def test_the_scan_finds_a_checkout_path():
    # Split in two, so that this file's own text holds no path the scan would find.
    assert CHECKOUT_PATH.search('"source": "/home/ana/fashion/' + 'cnn-by-myself/checkpoints/x"')
    assert CHECKOUT_PATH.search("File /srv/ana/fashion/" + ".venv/lib/python3.11/site-packages/a.py")
    assert not CHECKOUT_PATH.search("apt installs /usr/share/datasets/fashion-mnist/")
    assert not CHECKOUT_PATH.search("see cnn-by-myself/logs/tuned.log and ../runs/quick/")


def test_no_committed_file_holds_an_absolute_checkout_path():
    own = str(REPO_ROOT) + "/"
    leaks = []
    for path in committed_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        found = own if own in text else (m.group(0) if (m := CHECKOUT_PATH.search(text)) else "")
        if found:
            leaks.append(f"{path.relative_to(REPO_ROOT)}: {found}")
    # Binary files too (a PDF's links, an image's metadata): this checkout's own path at least.
    leaks += [f"{path.relative_to(REPO_ROOT)}: {own}" for path in committed_files()
              if own.encode() in path.read_bytes()]  # fmt: skip
    assert not leaks, "absolute paths in committed files:\n" + "\n".join(sorted(set(leaks)))


def test_no_committed_record_names_a_kernel_build():
    kernel = re.compile(r'"platform": "[^"]*\d+\.\d+\.\d+')
    found = [str(path.relative_to(REPO_ROOT)) for path in committed_text_files()
             if kernel.search(path.read_text(encoding="utf-8", errors="replace"))]  # fmt: skip
    assert not found, "provenance with the kernel's release string:\n" + "\n".join(found)


def test_provenance_names_no_kernel_build():
    record = provenance()
    assert len(record["platform"].split()) == 2, record["platform"]  # system, machine
    assert not re.search(r"\d+\.\d+\.\d+", record["platform"]), record["platform"]
