"""The NumPy CNN: gradients against finite differences and PyTorch, training, checkpoints, faults."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import gradcheck
import layers
import numpy as np
import numpy_cnn as nc
import pytest
import reference_layers as ref
from gradcheck import numerical_gradient as numerical_grad
from gradcheck import relative_error as rel_error

from fashion_mnist import plots

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench_lenet.py"
F64 = np.float64


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_lenet", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


torch_lenet = _bench_module().torch_lenet


def check_layer_gradients(layer, x, train=True, seed=0):
    """Compare the layer's analytic gradients of sum(out * R) with central differences."""
    rng = np.random.default_rng(seed)
    out = layer.forward(x, train)
    r = rng.standard_normal(out.shape)

    def f():
        return float(np.sum(layer.forward(x, train) * r))

    layer.forward(x, train)
    dx = layer.backward(r)
    errors = {"x": rel_error(dx, numerical_grad(f, x))}
    for key, p in layer.params.items():
        errors[key] = rel_error(layer.grads[key], numerical_grad(f, p))
    return errors


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 784), dtype=np.uint8)


def labels(n, seed=0):
    return np.random.default_rng(seed + 1).integers(0, 10, n)


# --------------------------------------------------------------------------------------------
# Gradient checks (float64, central differences)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bands", ["one-band", "rows", "pieces"])
@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 2), (2, 1)])
def test_conv_gradients(stride, padding, bands, monkeypatch):
    # A small-GEMM threshold of two output rows' worth makes the layer go two rows at a time, one
    # of two pixels' worth in pieces of a row (4 x 27 weights, batch 2).
    wo = (7 + 2 * padding - 3) // stride + 1
    pixels = {"one-band": 10**9, "rows": 2 * wo, "pieces": 2}[bands]
    monkeypatch.setattr(layers, "SMALL_GEMM", 4 * 27 * pixels * 2)
    monkeypatch.setattr(layers, "MIN_BAND", 1)
    rng = np.random.default_rng(1)
    layer = nc.Conv2D(3, 4, 3, stride=stride, padding=padding, rng=rng, dtype=F64)
    layer.params["bias"][:] = rng.standard_normal((4, 1))
    x = rng.standard_normal((3, 7, 7, 2))
    half = -(-wo // 2)  # output rows (as many as columns) in twos
    expected = {"one-band": 1, "rows": half, "pieces": wo * half}[bands]
    assert len(layer._bands(layer._patches(x))) == expected
    errors = check_layer_gradients(layer, x)
    assert max(errors.values()) < 1e-6, errors


def test_channel_sums_are_accurate_in_float32():
    # BN's statistics over 6 x 28 x 28 x 128 float32 values (bn1 at batch 128), against float64.
    rng = np.random.default_rng(5)
    a, b = (rng.standard_normal((6, 28, 28, 128)).astype(np.float32) + 3 for _ in range(2))
    a64, b64 = a.astype(F64), b.astype(F64)
    np.testing.assert_allclose(layers.channel_sum(a), a64.sum(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(layers.channel_dot(a, b), (a64 * b64).sum(axis=(1, 2, 3)), rtol=1e-6)


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_gradients(train):
    rng = np.random.default_rng(2)
    layer = nc.BatchNorm2D(3, dtype=F64)
    layer.params["gamma"][:] = rng.uniform(0.5, 2, 3)
    layer.params["beta"][:] = rng.standard_normal(3)
    layer.buffers["running_mean"][:] = rng.standard_normal(3)
    layer.buffers["running_var"][:] = rng.uniform(0.5, 2, 3)
    x = rng.standard_normal((3, 4, 4, 5)) * 3 + 1
    if train:
        errors = check_layer_gradients(layer, x, train=True)
        assert max(errors.values()) < 1e-6, errors
    else:
        # Eval mode is an affine map per channel: out = gamma * (x - mean) / std + beta.
        out = layer.forward(x, train=False)
        std = np.sqrt(layer.buffers["running_var"] + layer.eps)[:, None, None, None]
        expected = (layer.params["gamma"][:, None, None, None]
                    * (x - layer.buffers["running_mean"][:, None, None, None]) / std
                    + layer.params["beta"][:, None, None, None])
        assert rel_error(out, expected) < 1e-12


def test_relu_maxpool_flatten_linear_gradients():
    rng = np.random.default_rng(3)
    layers_and_inputs = [
        (nc.ReLU(), rng.standard_normal((2, 4, 4, 3))),
        (nc.MaxPool2D(2), rng.standard_normal((2, 4, 6, 3))),
        (nc.Flatten(), rng.standard_normal((2, 3, 3, 4))),
        (nc.Linear(5, 4, rng=rng, dtype=F64), rng.standard_normal((5, 6))),
    ]
    layers_and_inputs[3][0].params["bias"][:] = rng.standard_normal(4)
    for layer, x in layers_and_inputs:
        errors = check_layer_gradients(layer, x)
        assert max(errors.values()) < 1e-6, (layer.describe(), errors)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_gradient_and_value(smoothing):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((10, 7)) * 3
    y = rng.integers(0, 10, 7)
    loss_fn = nc.SoftmaxCrossEntropy(label_smoothing=smoothing)
    loss = loss_fn.forward(logits, y)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits.T), torch.from_numpy(y),
                                                 label_smoothing=smoothing)  # fmt: skip
    assert abs(loss - expected.item()) < 1e-12
    numeric = numerical_grad(lambda: loss_fn.forward(logits, y), logits)
    loss_fn.forward(logits, y)
    assert rel_error(loss_fn.backward(), numeric) < 1e-6


def test_whole_network_gradients():
    """All parameters and the input, on sampled entries (a full check would take minutes)."""
    errors = gradcheck.check_network(seed=5)
    for key in gradcheck.CANCELLED_BY_BATCHNORM:  # true gradient 0: its absolute size is checked
        assert errors.pop(key) < 1e-12, key
    assert len(errors) == 13 and max(errors.values()) < 1e-6, errors


# --------------------------------------------------------------------------------------------
# Agreement with PyTorch autograd and with the naive loop oracle
# --------------------------------------------------------------------------------------------


def torch_step(net, x_nchw, y):
    x = torch.tensor(x_nchw, requires_grad=True)
    logits = net(x)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    loss.backward()
    return logits.detach().numpy(), float(loss.detach()), x.grad.numpy()


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-8), (np.float32, 1e-4)])
def test_matches_pytorch(dtype, tol):
    rng = np.random.default_rng(6)
    model = nc.build_lenet(seed=6, dtype=dtype)
    model.layers[0].input_grad = True
    for key, p in model.params().items():
        if key.endswith(("bias", "beta", "gamma")):
            p[:] = rng.standard_normal(p.shape) * 0.1 + (1 if key.endswith("gamma") else 0)
    for key, b in model.buffers().items():
        b[:] = rng.uniform(0.5, 1.5, b.shape) if key.endswith("var") else rng.standard_normal(b.shape)
    net = torch_lenet(model)
    old_buffers = {key: b.astype(F64) for key, b in model.buffers().items()}

    batch = images(16, seed=6)
    y = labels(16, seed=6)
    x = nc.to_input(batch, dtype)  # (1, 28, 28, N)
    x_nchw = np.ascontiguousarray(x.transpose(3, 0, 1, 2))

    # Eval mode: running statistics.
    net.eval()
    with torch.no_grad():
        expected = net(torch.tensor(x_nchw)).numpy()
    assert rel_error(model.forward(x, train=False).T, expected) < tol

    # Train mode: logits, loss, every parameter gradient and the input gradient.
    net.train()
    t_logits, t_loss, t_dx = torch_step(net, x_nchw, y)
    loss_fn = nc.SoftmaxCrossEntropy()
    logits = model.forward(x, train=True)
    assert rel_error(logits.T, t_logits) < tol
    assert abs(loss_fn.forward(logits, y) - t_loss) / t_loss < tol
    dx = model.backward(loss_fn.backward())
    assert rel_error(dx.transpose(3, 0, 1, 2), t_dx) < tol

    t_params = dict(net.named_parameters())
    torch_names = {"conv1": "0", "bn1": "1", "conv2": "4", "bn2": "5",
                   "fc1": "9", "fc2": "11", "fc3": "13"}
    for key, grad in model.grads().items():
        if key in gradcheck.CANCELLED_BY_BATCHNORM:
            assert np.abs(grad).max() < tol * 1e-2, key
            continue
        layer, kind = key.split("_", 1)
        t_kind = "weight" if kind in ("weights", "gamma") else "bias"
        t_grad = t_params[f"{torch_names[layer]}.{t_kind}"].grad.numpy()
        if layer.startswith("fc") and kind == "weights":
            t_grad = t_grad.T  # ours (in, out), torch (out, in)
        assert rel_error(grad, t_grad.reshape(grad.shape)) < tol, key

    # Running statistics: same mean; our variance is the biased one (torch: unbiased).
    for name, idx, m in (("bn1", "1", 16 * 28 * 28), ("bn2", "5", 16 * 10 * 10)):
        t_bn = dict(net.named_buffers())
        ours = model.buffers()
        assert rel_error(ours[f"{name}_running_mean"], t_bn[f"{idx}.running_mean"].numpy()) < tol
        old = old_buffers[f"{name}_running_var"]
        t_batch_var = (t_bn[f"{idx}.running_var"].numpy() - 0.9 * old) / 0.1 * (m - 1) / m
        assert rel_error(ours[f"{name}_running_var"], 0.9 * old + 0.1 * t_batch_var) < tol


def test_sgd_matches_pytorch():
    rng = np.random.default_rng(7)
    for nesterov in (False, True):
        p = rng.standard_normal(5)
        tp = torch.tensor(p.copy(), requires_grad=True)
        ours = nc.SGD({"p": p}, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
        theirs = torch.optim.SGD([tp], lr=0.1, momentum=0.9, weight_decay=0.01,
                                 nesterov=nesterov)
        for _ in range(5):
            g = rng.standard_normal(5)
            tp.grad = torch.tensor(g)
            theirs.step()
            ours.step({"p": g})
        assert rel_error(p, tp.detach().numpy()) < 1e-12


@pytest.mark.parametrize("stride,padding", [(1, 2), (2, 1)])
def test_conv_matches_naive_loops(stride, padding):
    rng = np.random.default_rng(8)
    layer = nc.Conv2D(3, 5, 5, stride=stride, padding=padding, rng=rng, dtype=F64)
    layer.params["bias"][:] = rng.standard_normal((5, 1))
    x = rng.standard_normal((3, 9, 8, 4))
    expected = ref.conv2d(x, layer.params["weights"], layer.params["bias"], stride, padding)
    assert rel_error(layer.forward(x), expected) < 1e-12


def test_maxpool_matches_naive_loops_and_routes_ties_to_first():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 8, 6, 5)).astype(np.float32)
    pool = nc.MaxPool2D(2)
    np.testing.assert_array_equal(pool.forward(x), ref.maxpool2d(x))
    # An all-equal window sends its whole gradient to its first (top-left) element, like torch.
    ties = np.zeros((1, 2, 2, 1), dtype=np.float32)
    pool.forward(ties)
    dx = pool.backward(np.ones((1, 1, 1, 1), dtype=np.float32))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0], [0, 0]])


def test_pool_then_relu_is_relu_then_pool_exactly():
    """build_lenet pools before its ReLU: the same outputs and input gradients, bit for bit."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 8, 8, 5)).astype(np.float32)
    x[:, :4] = np.float32(0.25)  # ties, as a flat background gives after batch norm
    x[:, 4:, :4] = np.float32(-0.5)
    dout = rng.standard_normal((3, 4, 4, 5)).astype(np.float32)
    results = []
    for order in ([nc.ReLU(), nc.MaxPool2D(2)], [nc.MaxPool2D(2), nc.ReLU()]):
        model = nc.Sequential(order)
        results.append((model.forward(x), model.backward(dout)))
    (out_a, dx_a), (out_b, dx_b) = results
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(dx_a, dx_b)


def test_to_input_layout():
    batch = images(5)
    x = nc.to_input(batch)
    assert x.shape == (1, 28, 28, 5) and x.flags.c_contiguous  # batch innermost in memory
    np.testing.assert_allclose(x[0, 3, 7, 2], batch[2, 3 * 28 + 7] / 255, rtol=1e-6)


def test_float32_stays_float32():
    model = nc.build_lenet()
    loss_fn = nc.SoftmaxCrossEntropy()
    logits = model.forward(nc.to_input(images(8)), train=True)
    assert logits.dtype == np.float32
    loss_fn.forward(logits, labels(8))
    model.backward(loss_fn.backward())
    assert {g.dtype for g in model.grads().values()} == {np.dtype(np.float32)}


# --------------------------------------------------------------------------------------------
# Model, summary, schedules, training
# --------------------------------------------------------------------------------------------


def test_summary_is_computed():
    text = nc.summary(nc.build_lenet())
    assert "61,750" in text.splitlines()[-1]
    for shape in ("(6, 28, 28)", "(6, 14, 14)", "(16, 10, 10)", "(16, 5, 5)", "(400,)", "(10,)"):
        assert shape in text
    assert nc.count_params(nc.build_lenet()) == 61_750
    smaller = nc.Sequential(nc.build_lenet().layers[:4])
    assert smaller.layers and "168" in nc.summary(smaller).splitlines()[-1]


def test_he_init_and_zero_biases():
    model = nc.build_lenet(seed=3)
    p = model.params()
    assert np.std(p["fc1_weights"]) == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert np.std(p["conv2_weights"]) == pytest.approx(np.sqrt(2 / 150), rel=0.05)
    assert not any(p[k].any() for k in p if k.endswith("bias"))
    assert not np.array_equal(p["fc1_weights"], nc.build_lenet(seed=4).params()["fc1_weights"])


def test_learning_rate_schedules():
    cfg = nc.TrainConfig(steps=100, lr=0.1, schedule="cosine")
    assert nc.learning_rate(cfg, 1) == pytest.approx(0.1)
    assert nc.learning_rate(cfg, 51) == pytest.approx(0.05)
    assert nc.learning_rate(cfg, 100) < 1e-3
    step = dataclasses.replace(cfg, schedule="step", step_every=30, step_gamma=0.5)
    assert [nc.learning_rate(step, s) for s in (1, 30, 31, 61)] == [0.1, 0.1, 0.05, 0.025]
    assert nc.learning_rate(dataclasses.replace(cfg, schedule="constant"), 99) == 0.1
    with pytest.raises(ValueError, match="bogus"):
        nc.learning_rate(dataclasses.replace(cfg, schedule="bogus"), 1)


def test_presets():
    assert (nc.ORIGINAL.steps, nc.ORIGINAL.batch_size, nc.ORIGINAL.lr) == (5000, 64, 0.0005)
    assert nc.ORIGINAL.schedule == "constant" and nc.ORIGINAL.momentum == 0.9
    # The original trained on the images as they are: no augmentation, no label smoothing.
    assert (nc.ORIGINAL.translate, nc.ORIGINAL.hflip, nc.ORIGINAL.label_smoothing) == (0, False, 0)
    json.dumps(dataclasses.asdict(nc.TUNED))


@pytest.mark.parametrize("name,value", [
    ("steps", 0), ("steps", -5), ("steps", 10.0), ("steps", True), ("steps", "100"),
    ("batch_size", 0), ("batch_size", 64.5), ("checkpoint_every", -1), ("checkpoint_every", False),
    ("step_every", 0), ("lr", 0), ("lr", -0.1), ("lr", float("nan")), ("lr", float("inf")),
    ("lr", "0.1"), ("momentum", 1.0), ("momentum", -0.1), ("weight_decay", -1e-4),
    ("label_smoothing", 1.0), ("label_smoothing", -0.1), ("translate", -1), ("translate", 1.5),
    ("schedule", "linear"), ("schedule", None), ("step_gamma", 0), ("nesterov", 1),
    ("hflip", "yes"), ("seed", -1),
])
def test_config_refuses_bad_values_by_name(name, value):
    message = rf"^TrainConfig\.{name} must be .*, got {re.escape(repr(value))}$"
    with pytest.raises(ValueError, match=message):
        nc.TrainConfig(**{name: value})
    with pytest.raises(ValueError, match=message):  # replace() checks too
        dataclasses.replace(nc.TUNED, **{name: value})


def test_config_message_and_accepted_edges():
    with pytest.raises(ValueError, match=r"^TrainConfig\.steps must be a positive integer, got -5$"):
        nc.TrainConfig(steps=-5)
    edges = nc.TrainConfig(steps=np.int64(3), lr=1, momentum=0.0, weight_decay=0,
                           label_smoothing=0.0, translate=0, schedule="step", seed=0)
    assert edges.steps == 3 and edges.lr == 1


def test_tiny_subset_overfits(tmp_path):
    x, y = images(32, seed=10), labels(32, seed=10)
    model = nc.build_lenet(seed=1)
    cfg = nc.TrainConfig(steps=50, batch_size=32, lr=0.05, schedule="constant",
                         weight_decay=0.0, translate=0, checkpoint_every=1000)
    history = nc.train(model, cfg, x, y, tmp_path)
    assert history["accuracy"][-1] == 1.0
    assert nc.evaluate(model, x, y) == 1.0  # eval mode, running statistics


def small_config(**changes):
    base = nc.TrainConfig(steps=6, batch_size=8, lr=0.05, checkpoint_every=2, seed=3)
    return dataclasses.replace(base, **changes)


def test_train_history_and_callback(tmp_path):
    seen = []
    history = nc.train(nc.build_lenet(), small_config(steps=5), images(20), labels(20), tmp_path,
                       on_step=lambda *a: seen.append(a))
    assert [s for s, _, _ in seen] == history["step"] == [1, 2, 3, 4, 5]
    assert [loss for _, loss, _ in seen] == history["loss"]
    assert history["lr"][0] == 0.05 and history["lr"][-1] < 0.05
    assert [Path(p).name for p in history["checkpoints"]] == [
        "model_step2.npz", "model_step4.npz", "model_step5.npz"]
    json.dumps(history)


class Interrupt(Exception):
    pass


def test_resume_is_bit_identical(tmp_path):
    x, y = images(40), labels(40)  # 5 batches of 8 per epoch: the run crosses an epoch
    config = small_config(hflip=True, translate=2)  # augmentation draws from the RNG too
    straight = nc.build_lenet(seed=2)
    full = nc.train(straight, config, x, y, tmp_path / "a")

    def interrupt(step, loss, acc):
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        nc.train(nc.build_lenet(seed=2), config, x, y, tmp_path / "b", on_step=interrupt)
    assert [p.name for p in nc.list_checkpoints(tmp_path / "b")] == [
        "model_step2.npz", "model_step4.npz"]
    resumed_model = nc.build_lenet(seed=99)  # its own weights are replaced by the checkpoint's
    resumed = nc.train(resumed_model, config, x, y, tmp_path / "b")
    assert resumed["step"] == full["step"] and resumed["loss"] == full["loss"]
    for key, value in straight.state().items():
        np.testing.assert_array_equal(resumed_model.state()[key], value, err_msg=key)
    # Without resume the same folder is trained from scratch.
    again = nc.train(nc.build_lenet(seed=99), config, x, y, tmp_path / "b", resume=False)
    assert again["loss"] != full["loss"]


def test_resume_refuses_other_config(tmp_path):
    nc.train(nc.build_lenet(), small_config(steps=2), images(20), labels(20), tmp_path)
    with pytest.raises(ValueError, match="config"):
        nc.train(nc.build_lenet(), small_config(steps=2, lr=0.01), images(20), labels(20),
                 tmp_path)


def test_nan_loss_names_the_step_and_keeps_last_checkpoint(tmp_path):
    model = nc.build_lenet()

    def poison(step, loss, acc):
        if step == 3:
            model.params()["fc3_bias"][0] = np.nan

    with pytest.raises(FloatingPointError, match="step 4"):
        nc.train(model, small_config(), images(20), labels(20), tmp_path, on_step=poison)
    assert [p.name for p in nc.list_checkpoints(tmp_path)] == ["model_step2.npz"]
    good = nc.load(tmp_path / "model_step2.npz")
    assert all(np.isfinite(v).all() for v in good.state().values())


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------

ORIGINAL_KEYS = [f"{layer}_{kind}" for layer in ("conv1", "bn1", "conv2", "bn2", "fc1", "fc2",
                                                 "fc3")
                 for kind in (("gamma", "beta") if layer.startswith("bn") else ("weights", "bias"))]


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    model = nc.build_lenet()
    nc.train(model, small_config(steps=4), images(40), labels(40), folder)
    return model, folder / "model_step4.npz"


def test_checkpoint_layout(trained_checkpoint):
    _, path = trained_checkpoint
    with np.load(path, allow_pickle=False) as data:
        shapes = {key: data[key].shape for key in data.files}
        config = json.loads(str(data["config"]))
        rng_state = json.loads(str(data["rng_state"]))
        assert int(data["step"]) == 4
    assert set(ORIGINAL_KEYS) <= set(shapes)
    assert shapes["conv1_weights"] == (6, 1, 5, 5) and shapes["conv1_bias"] == (6, 1)
    assert shapes["conv2_weights"] == (16, 6, 5, 5) and shapes["fc1_weights"] == (400, 120)
    assert shapes["fc3_weights"] == (84, 10) and shapes["bn2_running_var"] == (16,)
    assert shapes["momentum_fc1_weights"] == (400, 120)
    assert config == dataclasses.asdict(small_config(steps=4))
    assert rng_state["bit_generator"] == "PCG64"


def test_checkpoint_round_trip(trained_checkpoint):
    model, path = trained_checkpoint
    loaded = nc.load(path)
    for key, value in model.state().items():
        np.testing.assert_array_equal(loaded.state()[key], value, err_msg=key)
    x = images(30, seed=11)
    probs = nc.predict_proba(loaded, x)
    assert probs.shape == (30, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(probs, nc.predict_proba(model, x))


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


def test_missing_key_and_wrong_shape_name_the_key(trained_checkpoint, tmp_path):
    _, path = trained_checkpoint
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    missing = {k: v for k, v in arrays.items() if k != "fc2_bias"}
    with pytest.raises(KeyError, match=r"fc2_bias.*\(84,\)"):
        nc.load(_write(tmp_path / "missing.npz", missing))
    partial_bn = {k: v for k, v in arrays.items() if k != "bn2_running_var"}
    with pytest.raises(KeyError, match="bn2_running_var"):
        nc.load(_write(tmp_path / "partial.npz", partial_bn))
    wrong = {**arrays, "conv2_weights": np.zeros((16, 6, 3, 3), np.float32)}
    with pytest.raises(ValueError, match=r"conv2_weights.*\(16, 6, 3, 3\).*\(16, 6, 5, 5\)"):
        nc.load(_write(tmp_path / "wrong.npz", wrong))


def test_original_format_loads_with_warning_and_recalibrated_bn(trained_checkpoint, tmp_path):
    model, path = trained_checkpoint
    with np.load(path, allow_pickle=False) as data:
        original = {key: data[key] for key in ORIGINAL_KEYS}
    legacy = _write(tmp_path / "model_step5000.npz", original)
    calibration = images(300, seed=12)
    with pytest.warns(UserWarning, match="running statistics"):
        loaded = nc.load(legacy, calibration_images=calibration)
    # One calibration batch: the running statistics are exactly that batch's statistics.
    conv1_out = model.layers[0].forward(nc.to_input(calibration).astype(F64), train=False)
    bufs = loaded.buffers()
    np.testing.assert_allclose(bufs["bn1_running_mean"], conv1_out.mean(axis=(1, 2, 3)),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bufs["bn1_running_var"], conv1_out.var(axis=(1, 2, 3)), rtol=1e-4)
    assert not np.allclose(bufs["bn2_running_var"], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nc.load(path)  # the full format loads silently


def original_arrays(model) -> dict:
    """``model``'s parameters as the original course code saved them: float64, its layouts."""
    p = model.params()
    layouts = {"gamma": lambda a: a.reshape(1, -1, 1, 1), "beta": lambda a: a.reshape(1, -1, 1, 1)}
    arrays = {}
    for key in ORIGINAL_KEYS:
        value = p[key].astype(F64)
        kind = key.split("_", 1)[1]
        if kind in layouts:
            value = layouts[kind](value)  # (1, C, 1, 1)
        elif key.startswith("fc") and kind == "bias":
            value = value.reshape(1, -1)  # (1, out)
        arrays[key] = value
    return arrays


def test_original_layouts_load(tmp_path):
    rng = np.random.default_rng(14)
    model = nc.build_lenet(seed=14)
    for key, value in model.params().items():  # random, non-trivial values everywhere
        value[...] = rng.standard_normal(value.shape) * 0.1 + (1 if key.endswith("gamma") else 0)
    arrays = original_arrays(model)
    assert arrays["bn1_gamma"].shape == (1, 6, 1, 1) and arrays["fc2_bias"].shape == (1, 84)
    assert arrays["conv1_bias"].shape == (6, 1) and arrays["fc1_weights"].shape == (400, 120)
    assert {a.dtype for a in arrays.values()} == {np.dtype(F64)}
    path = _write(tmp_path / "model_step5000.npz", arrays)
    with pytest.warns(UserWarning, match="running statistics"):
        loaded = nc.load(path, calibration_images=images(200, seed=14))
    for key, value in model.params().items():
        assert loaded.params()[key].dtype == np.float32
        np.testing.assert_array_equal(loaded.params()[key], value, err_msg=key)

    wrong = {**arrays, "bn2_beta": np.zeros((1, 15, 1, 1))}  # not a layout of (16,)
    with pytest.raises(ValueError, match=r"model_bad\.npz.*bn2_beta.*\(1, 15, 1, 1\).*\(16,\)"):
        nc.load(_write(tmp_path / "model_bad.npz", wrong), calibration_images=images(20))
    reordered = {**arrays, "fc3_weights": arrays["fc3_weights"].T}  # (10, 84): same size, not it
    with pytest.raises(ValueError, match=r"fc3_weights.*\(10, 84\).*\(84, 10\)"):
        nc.load(_write(tmp_path / "model_t.npz", reordered), calibration_images=images(20))


@pytest.mark.real_data
def test_original_layouts_load_calibrated_on_real_data(real_data_dir, tmp_path):
    from fashion_mnist.data import load_mnist

    train_x, train_y = load_mnist(real_data_dir, "train")
    test_x, test_y = load_mnist(real_data_dir, "t10k")
    model = nc.build_lenet(seed=15)
    config = dataclasses.replace(nc.TUNED, steps=60, checkpoint_every=60, seed=15)
    nc.train(model, config, train_x[:6000], train_y[:6000], tmp_path / "run")
    path = _write(tmp_path / "model_step60.npz", original_arrays(model))
    with pytest.warns(UserWarning, match="running statistics"):
        loaded = nc.load(path, calibration_images=train_x[:6000])
    # Statistics re-estimated from training images: about as accurate as the model's own.
    ours, theirs = (nc.evaluate(m, test_x[:2000], test_y[:2000]) for m in (loaded, model))
    assert ours > 0.6 and abs(ours - theirs) < 0.05, (ours, theirs)


# --------------------------------------------------------------------------------------------
# Benchmark script
# --------------------------------------------------------------------------------------------


def run_bench(*args) -> str:
    # This checkout's fashion_mnist (and so its model), not whichever one is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(BENCH), *map(str, args)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO, env=env).stdout


def test_benchmark_smoke(tmp_path):
    record = tmp_path / "bench.json"
    out = run_bench("--json", "--rounds", "1", "--steps", "2", "--warmup", "1", "--batch-sizes",
                    "64", "--record", record)
    result = json.loads(out)
    assert list(result) == ["64"]
    numbers = {"numpy_images_per_s", "torch_images_per_s", "ratio"}
    assert set(result["64"]) == numbers | {"cpu"}
    assert all(result["64"][k] > 0 for k in numbers) and "cores" in result["64"]["cpu"]
    saved = json.loads(record.read_text())
    assert saved["results"] == result and saved["rounds"] == 1 and saved["steps"] == 2
    assert saved["provenance"]["git_commit"] and saved["threads"] >= 1
    assert result["64"]["cpu"] in _bench_module().table(result, 1, 2)  # the table names the CPU


def test_layer_profile_smoke_and_figure(tmp_path):
    record, figure = tmp_path / "layers.json", tmp_path / "layers.png"
    table = run_bench("--profile", "--rounds", "1", "--steps", "2", "--warmup", "1",
                      "--batch-sizes", "16", "--record", record)
    results = json.loads(record.read_text())["results"]
    assert results["batch"] == 16 and "cores" in results["cpu"] and results["cpu"] in table
    assert list(results["layers"]) == ["conv1", "bn1", "relu1/pool1", "conv2", "bn2",
                                       "relu2/pool2", "fc1", "fc2", "fc3", "loss", "sgd"]
    for row in results["layers"].values():
        assert all(row[impl][phase] >= 0 for impl in ("numpy", "torch")
                   for phase in ("forward", "backward"))
    assert results["layers"]["conv1"]["numpy"]["forward"] > 0
    plots.plot_layer_profile(json.loads(record.read_text()), figure)
    assert figure.read_bytes().startswith(b"\x89PNG")


def test_random_translate_is_a_crop_of_the_padded_image():
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 7)).astype(np.float32)
    shifted = nc.random_translate(x, 2, np.random.default_rng(3))
    dy, dx = np.random.default_rng(3).integers(0, 5, size=(2, 7))
    assert shifted.shape == x.shape and shifted.flags.c_contiguous
    for n in range(7):
        padded = np.pad(x[..., n], ((0, 0), (2, 2), (2, 2)))
        np.testing.assert_array_equal(shifted[..., n], padded[:, dy[n]:dy[n] + 6, dx[n]:dx[n] + 5])
