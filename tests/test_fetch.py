"""The fetch chain against a real HTTP server on 127.0.0.1, then the folder sources."""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from conftest import make_synthetic

from fashion_mnist.data import DatasetError, ensure_dataset, load_mnist

BASES = [f"{k}-{w}-idx{3 if w == 'images' else 1}-ubyte" for k in ("train", "t10k")
         for w in ("images", "labels")]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Synthetic files, their checksums, and a server whose behaviour a test can switch."""
    folder = tmp_path_factory.mktemp("served")
    make_synthetic(folder)
    files = {f"/{b}.gz": (folder / f"{b}.gz").read_bytes() for b in BASES}
    checksums = {b: hashlib.sha256(gzip.decompress(files[f"/{b}.gz"])).hexdigest() for b in BASES}
    state = {"mode": "ok", "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            if state["mode"] == "stall":
                time.sleep(2)  # longer than the client's timeout, bounded; the client is gone
                return
            if state["mode"] == "404" or self.path not in files:
                self.send_error(404)
                return
            body = files[self.path]
            if state["mode"] == "corrupt":
                body = gzip.compress(gzip.decompress(body)[:-1] + b"\x07")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}/", "checksums": checksums,
           "state": state, "folder": folder}  # fmt: skip
    server.shutdown()


def _fetch(served, dest, **kw):
    kw.setdefault("system_dir", dest.parent / "no-such-system-dir")
    kw.setdefault("environ", {})
    return ensure_dataset(dest, mirror=served["url"], checksums=served["checksums"],
                          timeout=0.5, retries=2, **kw)  # fmt: skip


def test_download_then_reuse(served, tmp_path):
    served["state"].update(mode="ok", requests=0)
    dest = tmp_path / "data"
    _fetch(served, dest)
    assert served["state"]["requests"] == 4
    assert not list(dest.glob("*.part"))
    images, labels = load_mnist(dest, "train")
    np.testing.assert_array_equal(images, load_mnist(served["folder"], "train")[0])
    _fetch(served, dest)  # verified files are found and not fetched again
    assert served["state"]["requests"] == 4


def test_checksum_mismatch_leaves_users_file_untouched(served, tmp_path):
    served["state"]["mode"] = "ok"
    dest = tmp_path / "data"
    dest.mkdir()
    theirs = dest / "train-images-idx3-ubyte.gz"
    theirs.write_bytes(gzip.compress(b"the user's own file"))
    before = theirs.read_bytes()
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: content SHA-256 .* left untouched"):
        _fetch(served, dest)
    assert theirs.read_bytes() == before


def test_corrupt_download_is_not_kept(served, tmp_path):
    served["state"]["mode"] = "corrupt"
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match="failed verification"):
        _fetch(served, dest)
    assert not list(dest.glob("*.gz")) and not list(dest.glob("*.part"))


def test_404_lists_the_three_ways(served, tmp_path):
    served["state"]["mode"] = "404"
    with pytest.raises(DatasetError, match=r"HTTP 404") as info:
        _fetch(served, tmp_path / "data")
    message = str(info.value)
    for way in ("make data", "dataset-fashion-mnist", "FASHION_MNIST_DIR"):
        assert way in message


def test_stalled_server_times_out(served, tmp_path):
    served["state"]["mode"] = "stall"
    start = time.monotonic()
    with pytest.raises(DatasetError, match=r"download failed after 2 tries"):
        _fetch(served, tmp_path / "data")
    assert time.monotonic() - start < 20
    assert not list((tmp_path / "data").glob("*.part"))


def test_env_var_folder_is_used_before_the_mirror(served, tmp_path):
    served["state"].update(mode="404", requests=0)
    dest = tmp_path / "data"
    _fetch(served, dest, environ={"FASHION_MNIST_DIR": str(served["folder"])})
    assert served["state"]["requests"] == 0
    assert len(load_mnist(dest, "t10k")[0]) == 50


def test_system_folder_is_copied(served, tmp_path):
    served["state"].update(mode="404", requests=0)
    system = tmp_path / "system"
    make_synthetic(system, suffix="")  # a gunzipped copy there is fine too
    dest = tmp_path / "data"
    _fetch(served, dest, system_dir=system)
    assert served["state"]["requests"] == 0
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == sorted(BASES)
