"""experiments/conv_lowering: the width-lowered (MEC) convolution computes what the model's
im2col Conv2D computes, its check catches a layer that does not, and the study records."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import numpy_cnn as nc
import pytest
import reference_layers as ref

from fashion_mnist import REPO_ROOT

SCRIPT = REPO_ROOT / "experiments" / "conv_lowering" / "bench_lowering.py"
spec = importlib.util.spec_from_file_location("bench_lowering", SCRIPT)
lowering = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lowering)


def _pair(cls, in_channels, out_channels, padding):
    """The model's Conv2D and a ``cls`` layer with the same float64 weights and a random bias."""
    rng = np.random.default_rng(3)
    model = nc.Conv2D(in_channels, out_channels, 5, padding=padding, rng=rng, dtype=np.float64)
    model.params["bias"][:] = rng.standard_normal((out_channels, 1))
    variant = cls(in_channels, out_channels, 5, padding=padding, dtype=np.float64)
    variant.params = model.params
    return model, variant


@pytest.mark.parametrize("cls", [lowering.MECConv2D, lowering.HybridConv2D])
@pytest.mark.parametrize("in_channels, out_channels, padding, side",
                         [(6, 16, 0, 14), (1, 6, 2, 28), (2, 3, 1, 9)])  # conv2, conv1, other
def test_lowered_layers_compute_the_model_convolution_and_its_gradients(cls, in_channels,
                                                                        out_channels, padding, side):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((in_channels, side, side, 3))
    model, variant = _pair(cls, in_channels, out_channels, padding)
    out = variant.forward(x)
    np.testing.assert_allclose(out, ref.conv2d(x, model.params["weights"], model.params["bias"],
                                               padding=padding), rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    dx = variant.backward(dout)
    model.forward(x)
    np.testing.assert_allclose(dx, model.backward(dout), rtol=1e-10, atol=1e-10)
    for key in ("weights", "bias"):
        np.testing.assert_allclose(variant.grads[key], model.grads[key], rtol=1e-10, atol=1e-10)


def test_the_check_catches_a_layer_that_computes_something_else():
    model = nc.build_lenet()
    wrong = lowering.conv2_as("mec", nc.build_lenet())
    wrong.params = {key: value * 1.01 for key, value in wrong.params.items()}
    with pytest.raises(AssertionError, match="MECConv2D: output differs"):
        lowering.check_against_model(wrong, model.layers[lowering.CONV2], batch=4)
    lowering.check_against_model(lowering.conv2_as("hybrid", nc.build_lenet()),
                                 model.layers[lowering.CONV2], batch=4)


def test_the_study_records_every_mode_at_every_batch_size(tmp_path):
    record = tmp_path / "lowering.json"
    cmd = [sys.executable, str(SCRIPT), "--json", "--rounds", "1", "--steps", "2", "--warmup", "1",
           "--record", str(record)]
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    assert set(result["batches"]) == {str(b) for b in lowering.BATCH_SIZES}
    for row in result["batches"].values():
        assert set(row) == set(lowering.MODES) and row["im2col"]["speedup"] == 1
        for r in row.values():
            assert r["step"] > r["conv2_forward"] + r["conv2_backward"] > 0
    saved = json.loads(record.read_text())
    assert saved["results"] == result and saved["provenance"]["cpu"]
