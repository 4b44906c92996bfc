"""cnn-by-pytorch/: the models, augmentation, the training loop and its speed-ups (torch_fast),
checkpoints, and torch_run's runs. CPU only, but for the CUDA graphs' test."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import types

import numpy as np
import pandas as pd
import pytest
import torch
import torch_augment
import torch_cnn
import torch_fast
from torch import nn

from fashion_mnist.files import write_json
from fashion_mnist.runlog import write_metrics

TINY = dataclasses.replace(torch_cnn.REPRODUCTION, epochs=2, batch_size=32, eval_batch_size=64)


def learnable(n_train: int, n_val: int, seed: int):
    """Random images whose class is written into a bright square: learnable, and quick. Returns
    train images and labels, then validation images and labels."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        for i, y in enumerate(labels):
            images[i, 2 + 2 * y : 6 + 2 * y, 4:24] = 255
        return images.reshape(n, 784), labels

    return (*make(n_train), *make(n_val))


@pytest.fixture(scope="module")
def data():
    return learnable(96, 40, seed=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("run")
    return out, torch_cnn.train(TINY, *data, out, device="cpu")


# --- models ----------------------------------------------------------------------------------


def test_original_has_the_reports_parameter_count():
    model = torch_cnn.build_model(torch_cnn.REPRODUCTION)
    assert torch_cnn.count_params(model) == 1_630_282
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", ["se", "resnet"])
def test_variants_shapes_and_sizes(name):
    model = torch_cnn.build_model(torch_cnn.Config(model=name))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    params = torch_cnn.count_params(model)
    if name == "se":  # two squeeze-excite gates (32 -> 4 -> 32, 64 -> 8 -> 64) on the original
        assert params == 1_630_282 + (32 * 4 + 4 + 4 * 32 + 32) + (64 * 8 + 8 + 8 * 64 + 64)
    else:
        assert 2_000_000 < params <= 3_000_000


def test_initialisation_he_xavier_zero_bias():
    torch.manual_seed(0)
    model = torch_cnn.build_model(torch_cnn.REPRODUCTION)
    fc1, conv2 = model.fc1, model.conv2
    bound = (6 / (fc1.in_features + fc1.out_features)) ** 0.5  # Xavier-uniform
    assert fc1.weight.abs().max() <= bound and fc1.weight.abs().max() > 0.95 * bound
    he_std = (2 / (32 * 9)) ** 0.5
    assert conv2.weight.std().item() == pytest.approx(he_std, rel=0.05)
    for m in (model.conv1, conv2, fc1, model.fc2):
        assert torch.count_nonzero(m.bias) == 0


def test_initialisation_pytorch_keeps_the_layers_defaults():
    config = dataclasses.replace(torch_cnn.REPRODUCTION, init="pytorch")
    torch.manual_seed(0)
    model = torch_cnn.build_model(config)
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  torch_cnn.original_net().state_dict().values(),
                                                  strict=True))  # fmt: skip
    bound = model.fc1.in_features**-0.5  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert 0.95 * bound < model.fc1.weight.abs().max() <= bound
    assert torch.count_nonzero(model.fc1.bias) > 0


def test_initialisation_as_marked_only_where_the_original_table_marks_it():
    config = dataclasses.replace(torch_cnn.REPRODUCTION, init="as_marked")
    torch.manual_seed(0)
    model = torch_cnn.build_model(config)
    torch.manual_seed(0)
    defaults = torch_cnn.original_net().state_dict()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, defaults[k])}
    assert changed == {"conv1.weight", "fc1.weight"}
    assert model.conv1.weight.std().item() == pytest.approx((2 / 9) ** 0.5, rel=0.15)  # He, fan-in 9
    bound = (6 / (model.fc1.in_features + model.fc1.out_features)) ** 0.5  # Xavier-uniform
    assert 0.95 * bound < model.fc1.weight.abs().max() <= bound


def test_initialisation_as_marked_leaves_the_squeeze_excite_gates_at_their_defaults():
    config = dataclasses.replace(torch_cnn.REPRODUCTION, model="se", init="as_marked")
    torch.manual_seed(0)
    model = torch_cnn.build_model(config)
    torch.manual_seed(0)
    defaults = torch_cnn.original_net(se=True).state_dict()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, defaults[k])}
    assert changed == {"conv1.weight", "fc1.weight"}  # not se1.fc1 nor se2.fc1


def test_initialisation_as_marked_refuses_the_resnet():
    with pytest.raises(ValueError, match="Config.init 'as_marked'.*ResNet"):
        torch_cnn.Config(model="resnet", init="as_marked")


def test_summary_reports_measured_shapes_and_counts():
    text = torch_cnn.summary(torch_cnn.build_model(torch_cnn.REPRODUCTION))
    assert "(64, 7, 7)" in text and "(3136,)" in text and "1,606,144" in text
    rows = [line.split() for line in text.splitlines()[2:-2]]
    assert sum(int(r[-1].replace(",", "")) for r in rows) == 1_630_282
    assert text.splitlines()[-1].endswith("1,630,282")


@pytest.mark.parametrize("name", ["original", "se", "resnet"])
def test_summary_rows_add_up_to_the_model(name):
    model = torch_cnn.build_model(torch_cnn.Config(model=name))
    rows = torch_cnn.summary_rows(model)
    assert sum(r["params"] for r in rows) == torch_cnn.count_params(model)
    assert rows[-1]["output"] == "(10,)"
    json.dumps(rows)


@pytest.mark.parametrize("name", ["original", "se", "resnet"])
def test_one_training_step_lowers_the_loss(name, data):
    config = torch_cnn.Config(model=name)
    model = torch_cnn.build_model(config)
    optimizer = torch_cnn.make_optimizer(config, model)
    x = torch.as_tensor(data[0][:32]).float().reshape(-1, 1, 28, 28) / 255
    y = torch.as_tensor(data[1][:32])

    def loss():
        torch.manual_seed(1)  # the same dropout mask both times
        return nn.functional.cross_entropy(model(x), y)

    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    assert loss().item() < before.item()


# --- augmentation ----------------------------------------------------------------------------


@pytest.fixture
def batch():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 4:24, 4:24] = torch.rand(64, 1, 20, 20)  # a black border wider than any shift
    return x


def test_translate_shifts_without_losing_content(batch):
    out = torch_cnn.random_translate(batch, 2)
    assert out.shape == batch.shape
    torch.testing.assert_close(out.sum((1, 2, 3)), batch.sum((1, 2, 3)))  # pixels moved, not lost
    assert not torch.equal(out, batch)
    # every image is its original shifted by at most 2 pixels each way
    for img, orig in zip(out[:8], batch[:8], strict=True):
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
        assert any(torch.equal(img, torch.roll(orig, (dy, dx), (1, 2))) for dy, dx in shifts)


def test_hflip_mirrors_about_half(batch):
    out = torch_cnn.random_hflip(batch)
    flipped = [torch.equal(o, b.flip(2)) for o, b in zip(out, batch, strict=True)]
    kept = [torch.equal(o, b) for o, b in zip(out, batch, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54


def test_random_erasing(batch):
    assert torch.equal(torch_cnn.random_erasing(batch, 0.0), batch)
    out = torch_cnn.random_erasing(batch, 1.0)
    changed = (out != batch).flatten(1).sum(1)
    assert (changed > 0).all() and (changed < 0.5 * 784).all()


def test_augment_keeps_shape_range_and_dtype(batch):
    config = torch_cnn.IMPROVED
    out = torch_cnn.augment(batch, config)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert out.min() >= 0 and out.max() <= 1


def test_cutmix_mixes_labels_by_pasted_area(batch):
    y = torch.arange(64) % 10
    x, y_pasted, lam = torch_cnn.cutmix(batch, y)
    assert x.shape == batch.shape and 0 <= lam <= 1
    assert sorted(y_pasted.tolist()) == sorted(y.tolist())  # a permutation: labels are kept
    changed = (x != batch).flatten(1).any(1).float().mean()
    assert lam == 1 or changed > 0


# --- training, checkpoints, the shared interface --------------------------------------------


def test_train_history_and_checkpoints(trained, data):
    out, result = trained
    history = result["history"]
    assert [r["epoch"] for r in history] == [1, 2]
    keys = {"epoch", "epochs", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
            "test_acc", "lr", "seconds"}  # fmt: skip
    assert all(keys <= r.keys() for r in history)
    assert history[0]["test_acc"] is None  # no test set given
    assert result["params"] == 1_630_282
    assert result["best_epoch"] in (1, 2)
    assert [p.split("/")[-1] for p in result["checkpoints"]] == [
        "model_epoch1.pt",
        "model_epoch2.pt",
    ]
    json.dumps(result, allow_nan=False)  # plain data


def test_checkpoint_round_trip_weights_only(trained, data):
    out, result = trained
    path = result["best_checkpoint"]
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == result["best_epoch"] and raw["config"] == dataclasses.asdict(TINY)
    model = torch_cnn.load(path)
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, raw["model"][key])
    # the loaded model reproduces the validation accuracy recorded during training
    proba = torch_cnn.predict_proba(model, data[2])
    record = result["history"][result["best_epoch"] - 1]
    assert (proba.argmax(1) == data[3]).mean() == pytest.approx(record["val_acc"])


def test_predict_proba_rows_are_distributions(data):
    model = torch_cnn.build_model(torch_cnn.REPRODUCTION)
    for tta in (False, True):
        proba = torch_cnn.predict_proba(model, data[0][:50], batch_size=16, tta_flip=tta)
        assert proba.shape == (50, 10) and (proba >= 0).all()
        np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)


def test_resume_ends_with_the_same_weights(tmp_path, data):
    # augmentation, EMA and a schedule: every random and stateful part must be restored
    config = dataclasses.replace(
        TINY, translate=2, hflip=True, erasing=0.5, ema=0.9, schedule="onecycle", cutmix=0.5
    )
    whole = torch_cnn.train(config, *data, tmp_path / "whole", device="cpu")

    def interrupt(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        torch_cnn.train(config, *data, tmp_path / "split", on_epoch=interrupt, device="cpu")
    assert not (tmp_path / "split/checkpoints/model_epoch2.pt").exists()
    resumed = torch_cnn.train(config, *data, tmp_path / "split", device="cpu")

    a = torch.load(whole["checkpoints"][-1], weights_only=True)
    b = torch.load(resumed["checkpoints"][-1], weights_only=True)
    for part in ("model", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert_same_but_time(whole["history"], resumed["history"])


def test_resume_gives_the_learning_rate_the_kind_this_run_steps_with(tmp_path, data, monkeypatch):
    """A graphed run keeps its learning rate in a tensor (make_optimizer), any other in a float. A
    checkpoint resumed by the other kind of run (graphed on CUDA, then not, or the other way round)
    must give it the kind it needs: a captured graph would replay a float rate as captured. The
    graphs are faked on the CPU: the ordinary step stands in for the captured one."""
    config = dataclasses.replace(TINY, epochs=3, optimizer="sgd", lr=0.05, nesterov=True,
                                 schedule="cosine", cuda_graphs=True)  # fmt: skip
    monkeypatch.setattr(torch_fast, "CUDAGraphStep", lambda step, batch_size, device: step)

    def interrupt(record):
        raise KeyboardInterrupt

    for first, then in ((True, False), (False, True)):
        out = tmp_path / f"graphed_{first}_then_{then}"
        monkeypatch.setattr(torch_fast, "graphed", lambda config, device, graphed=first: graphed)
        with pytest.raises(KeyboardInterrupt):
            torch_cnn.train(config, *data, out, on_epoch=interrupt, device="cpu")
        monkeypatch.setattr(torch_fast, "graphed", lambda config, device, graphed=then: graphed)
        history = torch_cnn.train(config, *data, out, device="cpu")["history"]
        rates = [torch.load(torch_cnn.checkpoint_path(out, epoch), weights_only=True)
                 ["optimizer"]["param_groups"][0]["lr"] for epoch in (1, 2, 3)]  # fmt: skip
        kind = {True: torch.Tensor, False: float}
        assert [type(rate) for rate in rates] == [kind[first], kind[then], kind[then]]
        assert history[1]["lr"] < history[0]["lr"]  # the schedule goes on


def test_a_graphed_optimizer_reads_the_rate_the_scheduler_writes(monkeypatch):
    """When graphed, the learning rate is one tensor that the scheduler updates in place, so that
    every replay of the captured step reads the current rate (checked on a CPU, graphs faked)."""
    monkeypatch.setattr(torch_fast, "graphed", lambda config, device: config.cuda_graphs)
    config = dataclasses.replace(torch_cnn.RESNET, cuda_graphs=True, schedule="cosine", cutmix=0.0)
    model = nn.Linear(4, 2)
    optimizer = torch_cnn.make_optimizer(config, model)
    scheduler = torch_cnn.make_scheduler(config, optimizer, total_steps=10)
    rate = optimizer.param_groups[0]["lr"]
    assert isinstance(rate, torch.Tensor) and rate.item() == pytest.approx(config.lr)
    for step in range(1, 6):
        model(torch.ones(3, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
        assert optimizer.param_groups[0]["lr"] is rate  # the same tensor, rewritten
        cosine = config.lr * (1 + math.cos(math.pi * step / 10)) / 2
        assert rate.item() == pytest.approx(cosine, rel=1e-6)


def test_nondeterministic_runs_let_cudnn_choose(tmp_path, data, monkeypatch):
    calls = []
    monkeypatch.setattr(torch_fast, "keep_freed_memory", lambda: calls.append(1))
    config = dataclasses.replace(TINY, epochs=1, deterministic=False)
    try:
        result = torch_cnn.train(config, *data, tmp_path, device="cpu")
        assert torch.backends.cudnn.benchmark
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch_cnn.seed_everything(0)  # the other tests train deterministically
    assert np.isfinite(result["history"][0]["train_loss"])
    assert calls == [1]  # training keeps its freed buffers (tests/test_memory.py)


def test_checkpoint_names():
    assert torch_cnn.checkpoint_epoch("runs/x/checkpoints/model_epoch12.pt") == 12
    assert torch_cnn.checkpoint_epoch("model_epoch12.pt.tmp") is None
    path = torch_cnn.checkpoint_path("out", 3)
    assert path.as_posix() == "out/checkpoints/model_epoch3.pt"


def test_resume_refuses_another_config(trained, data):
    out, _ = trained
    other = dataclasses.replace(TINY, lr=0.01)
    with pytest.raises(torch_cnn.CheckpointError, match="another configuration"):
        torch_cnn.train(other, *data, out, device="cpu")
    # another evaluation batch size trains the same model: the finished run is simply resumed
    resumed = torch_cnn.train(dataclasses.replace(TINY, eval_batch_size=16), *data, out, device="cpu")
    assert len(resumed["history"]) == TINY.epochs


def test_bad_checkpoints_give_clear_errors(trained, tmp_path):
    out, result = trained
    good = result["checkpoints"][0]
    raw = open(good, "rb").read()

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(torch_cnn.CheckpointError, match=r"truncated\.pt.*truncated or corrupted"):
        torch_cnn.load(truncated)

    plain = tmp_path / "plain_state_dict.pt"
    torch.save(torch_cnn.build_model(TINY).state_dict(), plain)
    with pytest.raises(torch_cnn.CheckpointError, match=r"plain_state_dict\.pt.*not a torch_cnn"):
        torch_cnn.load(plain)

    other_arch = tmp_path / "other_arch.pt"
    state = torch.load(good, weights_only=True)
    state["config"]["model"] = "resnet"
    torch.save(state, other_arch)
    with pytest.raises(torch_cnn.CheckpointError, match=r"other_arch\.pt.*'resnet'"):
        torch_cnn.load(other_arch)

    bad_config = tmp_path / "bad_config.pt"
    state["config"] = {"model": "original", "depth": 3}
    torch.save(state, bad_config)
    with pytest.raises(torch_cnn.CheckpointError, match=r"bad_config\.pt.*config"):
        torch_cnn.load(bad_config)


def test_ema_averages_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = torch_cnn.build_model(torch_cnn.Config(model="resnet"))
    ema = torch_cnn.EMA(model, decay=0.9)
    before = {k: v.clone() for k, v in ema.model.state_dict().items()}
    model.train()
    model(torch.rand(4, 1, 28, 28))  # moves the BatchNorm statistics and counters
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # in place, as optimizers and load_state_dict change them
    ema.update()
    decay = min(0.9, 2 / 11)  # the ramp at the first update
    now = model.state_dict()
    for key, avg in ema.model.state_dict().items():
        if avg.is_floating_point():
            torch.testing.assert_close(avg, decay * before[key] + (1 - decay) * now[key])
        else:
            assert torch.equal(avg, now[key]) and now[key] == 1, key
    assert ema.updates == 1 and not any(p.requires_grad for p in ema.model.parameters())


def test_nan_loss_names_epoch_and_step(tmp_path, data, monkeypatch):
    calls = []

    def poisoned(x, config):
        calls.append(1)
        return x * float("nan") if len(calls) == 5 else x  # 3 steps per epoch: epoch 2, step 2

    monkeypatch.setattr(torch_augment, "augment", poisoned)
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 2/3 \(the last checkpoint is of epoch 1\)"):
        torch_cnn.train(TINY, *data, tmp_path, device="cpu")
    assert torch_cnn.latest_checkpoint(tmp_path) == torch_cnn.checkpoint_path(tmp_path, 1)


def assert_same_but_time(history, other):
    """Two training histories equal in every value but the seconds each epoch took."""
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in history] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in other
    ]


def test_cuda_graph_step_warms_up_captures_once_and_replays(monkeypatch):
    """The order of CUDAGraphStep's work, with CUDA's stream and graph calls faked so it runs on a
    CPU: a real capture records the step without running it, a replay runs what was recorded."""
    capturing, calls = [], []

    class FakeGraph:
        def replay(self):
            calls.append(("replay", step(recorded[0])))

    @contextlib.contextmanager
    def fake_capture(graph):
        capturing.append(True)
        yield
        capturing.pop()

    def step(idx):
        if capturing:  # recording: nothing runs, the outputs are the graph's fixed tensors
            recorded.append(idx)
            return outputs
        outputs.copy_(idx.sum())
        return outputs

    recorded, outputs = [], torch.zeros((), dtype=torch.long)
    stream = types.SimpleNamespace(wait_stream=lambda other: None)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: stream)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_capture)
    graphed = torch_cnn.CUDAGraphStep(step, batch_size=4, device=torch.device("cpu"))
    batches = [torch.arange(i, i + 4) for i in range(6)] + [torch.arange(2)]  # the last: 2 images
    results = [graphed(idx).item() for idx in batches]
    assert results == [int(idx.sum()) for idx in batches]  # every batch's own step
    assert len(recorded) == 1 and recorded[0] is graphed.batch  # captured once, on the fixed batch
    assert len(calls) == 3  # batches 4-6 replayed; 1-3 warmed up eagerly, the short one eager


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need an NVIDIA GPU")
@pytest.mark.parametrize("changes", [
    {},  # Adam at a constant rate, as the reproduction
    {"optimizer": "sgd", "lr": 0.05, "nesterov": True, "weight_decay": 5e-4, "schedule": "cosine"},
])  # fmt: skip
def test_cuda_graphs_train_like_the_same_step_run_eagerly(tmp_path, monkeypatch, changes):
    """Replays of the captured step against the same step never captured (every full batch a
    warm-up step): the same kernels, random numbers and learning-rate tensor. Against the ordinary
    step, whose rate is a Python float: the same at a constant rate but for the logged rate's
    float32 rounding (as measured on an H200); a scheduled rate differs by that rounding."""
    data = learnable(400, 80, seed=1)  # 12 full batches of 32 and a short one of 16
    config = dataclasses.replace(TINY, epochs=3, translate=1, hflip=True, erasing=0.25, ema=0.9,
                                 cuda_graphs=True, **changes)  # fmt: skip
    graphed = torch_cnn.train(config, *data, tmp_path / "graphed", device="cuda")["history"]
    ordinary = torch_cnn.train(dataclasses.replace(config, cuda_graphs=False), *data,
                               tmp_path / "ordinary", device="cuda")["history"]  # fmt: skip
    monkeypatch.setattr(torch_fast.CUDAGraphStep, "warmup_steps", 10**9)
    eager = torch_cnn.train(config, *data, tmp_path / "eager", device="cuda")["history"]
    assert graphed[-1]["train_loss"] < graphed[0]["train_loss"] / 2 and graphed[-1]["val_acc"] > 0.9
    assert_same_but_time(graphed, eager)
    assert [r["lr"] for r in graphed] == pytest.approx([r["lr"] for r in ordinary], rel=1e-6)
    if config.schedule == "constant":
        assert_same_but_time(*([{**r, "lr": None} for r in run] for run in (graphed, ordinary)))


# --- configuration -----------------------------------------------------------------------------


def test_presets():
    r = torch_cnn.REPRODUCTION
    assert (r.model, r.optimizer, r.lr, r.batch_size, r.epochs) == (
        "original",
        "adam",
        1e-3,
        128,
        20,
    )
    assert (r.schedule, r.translate, r.hflip, r.erasing, r.ema, r.label_smoothing) == (
        "constant", 0, False, 0.0, 0.0, 0.0,
    )  # fmt: skip
    assert torch_cnn.IMPROVED.model == "original" and torch_cnn.IMPROVED.epochs <= 30
    assert torch_cnn.RESNET.model == "resnet"
    for config in (r, torch_cnn.IMPROVED, torch_cnn.RESNET):
        json.dumps(dataclasses.asdict(config))


def test_ablations_change_one_thing_each():
    base = torch_cnn.ABLATIONS["baseline"]
    assert base == dataclasses.replace(torch_cnn.REPRODUCTION, epochs=torch_cnn.ABLATION_EPOCHS)
    for name, config in torch_cnn.ABLATIONS.items():
        changed = {
            f.name for f in dataclasses.fields(config) if getattr(config, f.name) != getattr(base, f.name)
        }  # fmt: skip
        # an optimizer or a schedule brings its own learning rate and decay settings
        assert changed <= {"translate", "hflip", "erasing", "schedule", "label_smoothing",
                           "optimizer", "lr", "weight_decay", "nesterov", "ema", "tta_flip",
                           "model"}, name  # fmt: skip
        assert name == "baseline" or changed, name


def test_cuda_graphs_refuse_what_a_replay_cannot_change():
    for change in ({"schedule": "onecycle"}, {"cutmix": 0.5}):
        with pytest.raises(ValueError, match=f"Config.cuda_graphs needs.*{next(iter(change))}"):
            dataclasses.replace(torch_cnn.REPRODUCTION, cuda_graphs=True, **change)
    dataclasses.replace(torch_cnn.RESNET, cuda_graphs=True, schedule="cosine", cutmix=0.0)


def test_cuda_graphs_elsewhere_train_with_the_ordinary_step(tmp_path, data):
    runs = [torch_cnn.train(dataclasses.replace(TINY, cuda_graphs=graphs), *data,
                            tmp_path / str(graphs), device="cpu")["history"]
            for graphs in (False, True)]  # fmt: skip
    assert_same_but_time(*runs)


def test_config_rejects_unknown_choices():
    with pytest.raises(ValueError, match="model"):
        torch_cnn.Config(model="vgg")
    with pytest.raises(ValueError, match="init"):
        torch_cnn.Config(init="lecun")


def test_pick_device_is_a_device():
    assert isinstance(torch_cnn.pick_device(), torch.device)


# --- torch_run: preset variants and recorded runs ---------------------------------------------


def test_override_reads_each_value_as_its_fields_type():
    import torch_run

    config = torch_run.override(
        torch_cnn.IMPROVED, ["cutmix=0.5", "hflip=false", "epochs=3", "optimizer=sgd"]
    )
    assert (config.cutmix, config.hflip, config.epochs, config.optimizer) == (0.5, False, 3, "sgd")
    assert torch_run.override(torch_cnn.IMPROVED, []) == torch_cnn.IMPROVED
    for bad, message in [("nope=1", "NAME one of"), ("epochs", "NAME=VALUE"),
                         ("epochs=x", "takes int values"), ("hflip=maybe", "true or false"),
                         ("optimizer=lbfgs", "Config.optimizer must be one of")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            torch_run.override(torch_cnn.IMPROVED, [bad])


def _write_epoch_log(out, name, val_accs, test_accs):
    from fashion_mnist.runlog import RunLog

    with RunLog(out / "logs", name, kind="epoch") as log:
        for epoch, (val, test) in enumerate(zip(val_accs, test_accs, strict=True), start=1):
            log.append(epoch=epoch, epochs=len(val_accs), train_loss=1.0 / epoch, train_acc=val,
                       val_loss=1.1 / epoch, val_acc=val, test_loss=1.2 / epoch, test_acc=test,
                       lr=0.1, seconds=2.5)  # fmt: skip


def test_record_from_log_selects_on_validation(tmp_path):
    import torch_run

    config = dataclasses.replace(torch_cnn.REPRODUCTION, epochs=3)
    _write_epoch_log(tmp_path, "cut_off", [0.80, 0.85, 0.85], [0.79, 0.83, 0.86])
    record = torch_run.record_from_log("cut_off", config, tmp_path, 1000, "Fake GPU")
    assert (record["selected_epoch"], record["val_accuracy"], record["test_accuracy"]) == (2, 0.85, 0.83)
    assert record["params"] == 1_630_282 and record["hardware"] == "Fake GPU"
    assert record["train_seconds"] == 7.5 and record["images_per_second"] == 400.0
    assert record["recorded_from_log"] and record["test_report"] is None
    assert record["provenance"] is None and record["recorded_by"]["git_commit"] is not None
    assert (tmp_path / record["figures"]["curves"]).is_file()
    written = write_metrics(tmp_path / "cut_off.json", record)
    assert written["provenance"] is None  # the training's is unknown: not the recorder's
    with pytest.raises(ValueError, match=r"cut_off\.csv.*does not reach epoch 5.*last epoch: 3"):
        torch_run.record_from_log("cut_off", dataclasses.replace(config, epochs=5), tmp_path, 1000,
                                  "Fake GPU")  # fmt: skip
    with pytest.raises(ValueError, match=r"cut_off\.run\.json is missing: name the hardware"):
        torch_run.record_from_log("cut_off", config, tmp_path, 1000)


def test_record_from_log_uses_and_checks_the_runs_header(tmp_path):
    import torch_run

    config = dataclasses.replace(torch_cnn.REPRODUCTION, epochs=3)
    _write_epoch_log(tmp_path, "cut_off", [0.80, 0.85, 0.84], [0.79, 0.83, 0.86])
    header = {"config": dataclasses.asdict(config), "hardware": "Fake GPU 2",
              "provenance": {"git_commit": "abc", "gpu": "Fake GPU 2"}}  # fmt: skip
    (tmp_path / "logs" / "cut_off.run.json").write_text(json.dumps(header))
    record = torch_run.record_from_log("cut_off", config, tmp_path, 1000)
    assert record["hardware"] == "Fake GPU 2" and record["provenance"] == header["provenance"]
    other = dataclasses.replace(config, translate=2)
    with pytest.raises(ValueError, match=r"another configuration \(translate=0\)"):
        torch_run.record_from_log("cut_off", other, tmp_path, 1000)
    # a header written before Config had `deterministic`, with another evaluation batch size
    old_config = {k: v for k, v in header["config"].items() if k != "deterministic"}
    header["config"] = {**old_config, "eval_batch_size": 1000}
    (tmp_path / "logs" / "cut_off.run.json").write_text(json.dumps(header))
    assert torch_run.record_from_log("cut_off", config, tmp_path, 1000)["hardware"] == "Fake GPU 2"


def test_a_run_writes_its_header_first(tmp_path, data):
    import torch_run

    from fashion_mnist.data import Splits

    images, labels, val_images, val_labels = data
    splits = Splits(images, labels, val_images, val_labels, val_images, val_labels)
    record = torch_run.run("tiny", TINY, splits, tmp_path, device="cpu")
    header = json.loads((tmp_path / "logs" / "tiny.run.json").read_text())
    assert header["config"] == record["config"] and header["provenance"]["git_commit"]
    # the header and the log make the same record, short of the checkpoint's evaluation
    again = torch_run.record_from_log("tiny", TINY, tmp_path, len(labels))
    assert (again["selected_epoch"], again["val_accuracy"]) == (
        record["selected_epoch"], record["val_accuracy"]
    )
    assert abs(again["test_accuracy"] - record["test_accuracy"]) < 1e-9  # CPU: same arithmetic


def test_a_run_holding_out_no_validation_trains_on_all_images_and_keeps_the_last_epoch(
    tmp_path, data, monkeypatch
):
    import torch_run

    from fashion_mnist.data import Splits

    images, labels, val_images, val_labels = data
    splits = Splits(images, labels, val_images, val_labels, val_images[:20], val_labels[:20])
    config = dataclasses.replace(TINY, hold_out_validation=False)
    trained_on, train = [], torch_cnn.train

    def spy(config, train_images, train_labels, val_images, *args, **kwargs):
        trained_on.append((train_labels.tolist(), val_images))
        return train(config, train_images, train_labels, val_images, *args, **kwargs)

    monkeypatch.setattr(torch_cnn, "train", spy)
    record = torch_run.run("all", config, splits, tmp_path, device="cpu")
    assert trained_on == [(labels.tolist() + val_labels.tolist(), None)]
    assert all(e["val_acc"] is None and e["test_acc"] is not None for e in record["epochs"])
    assert (record["selected_epoch"], record["val_accuracy"]) == (config.epochs, None)
    assert record["checkpoint"].endswith(f"model_epoch{config.epochs}.pt")
    assert torch_run.epoch_table(record)["selected"].iloc[-1] == "<- the last"
    log = (tmp_path / "logs" / "all.log").read_text()
    assert "Test Loss" in log and "Val" not in log
    again = torch_run.record_from_log("all", config, tmp_path, len(labels) + len(val_labels))
    assert (again["selected_epoch"], again["test_accuracy"]) == (config.epochs, record["test_accuracy"])
    assert "Ours, the last epoch: " in torch_run.versus_original(record)


def test_train_refuses_validation_images_its_config_does_not_hold_out(tmp_path, data):
    images, labels, val_images, val_labels = data
    with pytest.raises(ValueError, match=r"hold_out_validation=False wants validation images "
                       r"left out \(None\)"):  # fmt: skip
        torch_cnn.train(dataclasses.replace(TINY, hold_out_validation=False), *data, tmp_path)
    with pytest.raises(ValueError, match=r"hold_out_validation=True wants validation images given"):
        torch_cnn.train(TINY, images, labels, None, None, tmp_path)

def test_recorded_runs_describe_each_run_by_its_closest_preset(tmp_path):
    import torch_run

    assert torch_run.recorded_runs(tmp_path) is None
    runs = {"a_repro": torch_cnn.REPRODUCTION,
            # the evaluation batch size changes speed only: not a difference worth naming
            "b_cutmix": dataclasses.replace(torch_cnn.IMPROVED, cutmix=0.5, eval_batch_size=1000),
            "c_resnet30": dataclasses.replace(torch_cnn.RESNET, epochs=30, ema=0.0)}  # fmt: skip
    for name, config in runs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "name": name, "config": dataclasses.asdict(config), "epochs": [{}, {}],
            "selected_epoch": 2, "val_accuracy": 0.9, "test_accuracy": 0.89,
            "train_seconds": 12.0, "hardware": "Fake GPU",
        }))  # fmt: skip
    rows = torch_run.recorded_runs(tmp_path)["rows"]
    assert [r["description"] for r in rows] == [
        "reproduction", "improved with cutmix=0.5", "resnet with epochs=30, ema=0.0"
    ]
    assert rows[1]["epochs"] == 2 and rows[1]["test_accuracy"] == 0.89


def test_the_reproduction_is_compared_with_the_original_epoch_for_epoch():
    import torch_run

    original = (0.80, 0.85, 0.90, 0.92)

    def record(test_accs, selected=1):
        epochs = [{"epoch": e, "train_acc": 0.9, "val_acc": 0.9, "test_acc": t, "seconds": 1.0}
                  for e, t in enumerate(test_accs, start=1)]  # fmt: skip
        return {"epochs": epochs, "selected_epoch": selected, "test_accuracy": test_accs[selected - 1]}

    three = record([0.79, 0.84, 0.86], selected=3)
    table = torch_run.epoch_table(three, original_acc=original)
    assert table["original_test_acc"].tolist() == [0.80, 0.85, 0.90]  # epoch 4: we did not train it
    assert table.loc[3, "selected"] and "original_test_acc" not in torch_run.epoch_table(three)
    line = torch_run.versus_original(three, original)
    # the later half of the three epochs both ran (2-3), and each run's best test epoch
    assert "over epochs 2-3, on average: ours 85.00%, the original's 87.50%" in line
    assert "Best of epochs 1-3 on the test set: ours 86.00%, the original's 90.00%" in line
    assert line.endswith("selected on validation: 86.00% (epoch 3).") and "left out" not in line
    one = torch_run.versus_original(record([0.70]), original)
    assert "over epoch 1, on average: ours 70.00%, the original's 80.00%" in one
    longer = torch_run.versus_original(record([0.7, 0.8, 0.9, 0.91, 0.95], selected=5), original)
    assert "Best of epochs 1-4 on the test set: ours 91.00%" in longer
    assert "after 4 are left out" in longer and "95.00% (epoch 5)" in longer
    no_test = record([0.7, None])
    assert torch_run.versus_original(no_test, original).startswith("No per-epoch test accuracy")


def seed_record(name, seed, test_accs, selected, **changes):
    """A recorded 4-epoch reproduction run, as much of it as the seed summaries read."""
    config = dataclasses.replace(torch_cnn.REPRODUCTION, **{"epochs": 4, "seed": seed, **changes})
    epochs = [{"epoch": e, "train_loss": 1 - t, "train_acc": t, "test_acc": t}
              for e, t in enumerate(test_accs, start=1)]  # fmt: skip
    return {"name": name, "config": dataclasses.asdict(config), "epochs": epochs,
            "selected_epoch": selected, "val_accuracy": 0.9 if config.hold_out_validation else None,
            "test_accuracy": test_accs[selected - 1], "hardware": "Fake CPU"}  # fmt: skip


def test_the_reproduction_over_seeds(tmp_path):
    import torch_run

    main = seed_record("reproduction", 0, [0.80, 0.84, 0.90, 0.86], selected=3)
    assert torch_run.over_seeds(main, tmp_path) is None  # nothing recorded: nothing to compare
    for name, seed, accs, changes in [
        ("r_seed1", 1, [0.80, 0.84, 0.88, 0.90], {}),
        ("r_seed2", 2, [0.80, 0.84, 0.86, 0.86], {"eval_batch_size": 64}),  # speed only: kept
        ("r_lr", 3, [0.5] * 4, {"lr": 0.01}),
        ("r_seed0", 0, [0.5] * 4, {}),
    ]:  # fmt: skip
        (tmp_path / f"{name}.json").write_text(json.dumps(seed_record(name, seed, accs, 4, **changes)))
    seeds = torch_run.over_seeds(main, tmp_path)
    json.dumps(seeds)  # saved in metrics.json for the report
    table = pd.DataFrame(seeds["rows"]).set_index("seed")
    assert table.index.tolist() == [0, 1, 2]
    assert table["test_accuracy"].tolist() == [0.90, 0.90, 0.86]
    assert table["mean_test_acc_later_half"].round(4).tolist() == [0.88, 0.89, 0.86]
    line = torch_run.seeds_line(seeds)
    # test accuracy: mean 0.88667, sample standard deviation 0.02309
    assert line.startswith("Over 3 seeds (0, 1, 2), mean ± standard deviation: test accuracy at "
                           "the validation-selected epoch 88.67% ± 2.31% (from 86.00% to 90.00%); "
                           "mean test accuracy over epochs 3-4 87.67% ± 1.53%.")  # fmt: skip
    assert "r_lr.json (trained with lr=0.01)" in line and "r_seed0.json (seed 0 again)" in line


def test_seeds_by_init_groups_runs_trained_alike_but_for_the_seed(tmp_path):
    import torch_run

    assert torch_run.seeds_by_init(tmp_path) is None
    for name, seed, accs, changes in [
        ("he_seed0", 0, [0.80, 0.84, 0.90, 0.86], {}),
        ("he_seed1", 1, [0.80, 0.84, 0.88, 0.90], {}),
        ("pt_seed0", 0, [0.80, 0.86, 0.92, 0.92], {"init": "pytorch"}),
        ("pt_seed1", 1, [0.80, 0.86, 0.90, 0.94], {"init": "pytorch"}),
        ("pt_seed1_again", 1, [0.5] * 4, {"init": "pytorch"}),
        ("lr_seed0", 0, [0.5] * 4, {"lr": 0.01}),  # alone in its group: no spread to show
    ]:  # fmt: skip
        (tmp_path / f"{name}.json").write_text(json.dumps(seed_record(name, seed, accs, 3, **changes)))
    by_init = torch_run.seeds_by_init(tmp_path)
    json.dumps(by_init)  # saved in metrics.json for the report
    he, pt = by_init["groups"]
    assert (he["init"], he["description"]) == ("he_xavier", "epochs=4")
    assert (pt["init"], pt["description"]) == ("pytorch", "init=pytorch, epochs=4")
    assert by_init["left_out"] == ["pt_seed1_again.json (seed 1 again)",
                                   "lr_seed0.json (no other seed trained alike)"]  # fmt: skip
    assert [r["name"] for r in pt["rows"]] == ["pt_seed0", "pt_seed1"]
    assert pt["test_accuracy"]["mean"] == pytest.approx(0.91)  # epoch 3 of each
    assert pt["later_half"]["mean"] == pytest.approx((0.92 + 0.92 + 0.90 + 0.94) / 4)
    assert he["test_accuracy"]["std"] == pytest.approx(np.std([0.90, 0.88], ddof=1))
    assert pt["epoch_1"] == pytest.approx({"train_loss": 0.2, "train_acc": 0.8, "test_acc": 0.8})
    # a second folder: runs on all the training images, kept at their last epoch
    (tmp_path / "all").mkdir()
    for seed, accs in [(0, [0.82, 0.86, 0.90, 0.92]), (1, [0.82, 0.86, 0.92, 0.94])]:
        (tmp_path / "all" / f"all_seed{seed}.json").write_text(json.dumps(seed_record(
            f"all_seed{seed}", seed, accs, 4, init="pytorch", hold_out_validation=False)))  # fmt: skip
    by_init = torch_run.seeds_by_init(tmp_path, tmp_path / "all")
    assert by_init["folders"] == [tmp_path.name, "all"] and len(by_init["left_out"]) == 2
    all_data = by_init["groups"][2]
    assert all_data["description"] == "init=pytorch, epochs=4, hold_out_validation=False"
    assert [g["hold_out_validation"] for g in by_init["groups"]] == [True, True, False]
    assert all_data["test_accuracy"]["mean"] == pytest.approx(0.93)  # epoch 4 of each
    table = torch_run.init_table(by_init)  # beside the original's run
    assert table.index.tolist() == ["epochs=4", "init=pytorch, epochs=4", all_data["description"],
                                    "the original: one run, selected on test"]  # fmt: skip
    assert table["init"].tolist()[:3] == ["he_xavier", "pytorch", "pytorch"]
    assert table["hardware"].tolist()[:3] == ["Fake CPU"] * 3
    assert table["epoch 1 train_loss"].tolist() == pytest.approx([0.2, 0.2, 0.18, 0.4571])
    assert table["mean test_acc, epochs 3-4"].iloc[-1] == pytest.approx((0.9011 + 0.9083) / 2)
    assert table["test_acc (selected)"].iloc[-1] == 0.93  # the original's, selected on test
    (tmp_path / "long_seed0.json").write_text(json.dumps(seed_record("long_seed0", 0, [0.5] * 4, 3,
                                                                     epochs=5, lr=0.1)))  # fmt: skip
    (tmp_path / "long_seed1.json").write_text(json.dumps(seed_record("long_seed1", 1, [0.5] * 4, 3,
                                                                     epochs=5, lr=0.1)))  # fmt: skip
    left_out = torch_run.seeds_by_init(tmp_path)["left_out"]
    assert "long_seed0.json (5 epochs, not 4)" in left_out  # its later half differs


# --- benchmarks/bench_epoch.py -----------------------------------------------------------------


def test_the_epoch_benchmark_runs_both_loops_and_records(tmp_path):
    """Its figures come from `make bench`; here only that both loops run and the record says what
    was measured."""
    import subprocess
    import sys

    from fashion_mnist import REPO_ROOT

    record = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_epoch.py"), "--json",
           "--rounds", "1", "--steps", "2", "--warmup", "0", "--record", str(record)]  # fmt: skip
    result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    assert set(result) == {"ours", "plain", "ratio"}
    assert result["ratio"] == pytest.approx(result["ours"]["seconds"] / result["plain"]["seconds"])
    saved = json.loads(record.read_text())
    assert saved["results"] == result and (saved["rounds"], saved["steps"]) == (1, 2)
    assert saved["provenance"]["git_commit"] and saved["threads"] == result["ours"]["threads"]


def test_ensemble_without_the_numpy_checkpoint_says_which_file_is_missing(tmp_path, capsys):
    """A fresh clone has the NumPy notebook's metrics.json but not its (uncommitted) weights."""
    import torch_run

    metrics = tmp_path / "metrics.json"
    write_json(metrics, {"checkpoint": "checkpoints/tuned/model_step7000.npz"})
    assert torch_run.ensemble({}, metrics, splits=None) is None
    missing = tmp_path / "checkpoints/tuned/model_step7000.npz"
    assert f"{missing} not found: the ensemble has only the PyTorch models" in capsys.readouterr().out
    assert torch_run.ensemble({}, tmp_path / "absent.json", splits=None) is None
    assert "absent.json not found" in capsys.readouterr().out
