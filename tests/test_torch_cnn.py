"""cnn-by-pytorch/: the models, augmentation, the training loop and its speed-ups (torch_fast),
checkpoints, and torch_run's runs. CPU only, but for the CUDA graphs' test."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import types

import numpy as np
import pytest
import torch
import torch_augment
import torch_cnn
import torch_fast
from torch import nn

from fashion_mnist.files import write_json

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
    model = torch_cnn.build_model(torch_cnn.Config(model=name, init="pytorch"))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    params = torch_cnn.count_params(model)
    if name == "se":  # two squeeze-excite gates (32 -> 4 -> 32, 64 -> 8 -> 64) on the original
        assert params == 1_630_282 + (32 * 4 + 4 + 4 * 32 + 32) + (64 * 8 + 8 + 8 * 64 + 64)
    else:
        assert 2_000_000 < params <= 3_000_000


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
    assert torch_cnn.REPRODUCTION.init == torch_cnn.IMPROVED.init == "as_marked"
    torch.manual_seed(0)
    model = torch_cnn.build_model(torch_cnn.REPRODUCTION)
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
    with pytest.raises(ValueError, match="Config.init 'as_marked'.*ResNet has neither: use 'pytorch'"):
        torch_cnn.Config(model="resnet", init="as_marked")
    assert torch_cnn.RESNET.init == "pytorch"


def test_summary_reports_measured_shapes_and_counts():
    text = torch_cnn.summary(torch_cnn.build_model(torch_cnn.REPRODUCTION))
    assert "(64, 7, 7)" in text and "(3136,)" in text and "1,606,144" in text
    rows = [line.split() for line in text.splitlines()[2:-2]]
    assert sum(int(r[-1].replace(",", "")) for r in rows) == 1_630_282
    assert text.splitlines()[-1].endswith("1,630,282")


@pytest.mark.parametrize("name", ["original", "se", "resnet"])
def test_summary_rows_add_up_to_the_model(name):
    model = torch_cnn.build_model(torch_cnn.Config(model=name, init="pytorch"))
    rows = torch_cnn.summary_rows(model)
    assert sum(r["params"] for r in rows) == torch_cnn.count_params(model)
    assert rows[-1]["output"] == "(10,)"
    json.dumps(rows)


@pytest.mark.parametrize("name", ["original", "se", "resnet"])
def test_one_training_step_lowers_the_loss(name, data):
    config = torch_cnn.Config(model=name, init="pytorch")
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


def test_resume_refuses_a_run_given_validation_images_otherwise(trained, data):
    out, _ = trained
    images, labels, _, _ = data
    with pytest.raises(torch_cnn.CheckpointError,
                       match=r"model_epoch2\.pt: resumed with validation images not given"):  # fmt: skip
        torch_cnn.train(TINY, images, labels, None, None, out, device="cpu")


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
    state["config"].update(model="resnet", init="pytorch")
    torch.save(state, other_arch)
    with pytest.raises(torch_cnn.CheckpointError, match=r"other_arch\.pt.*'resnet'"):
        torch_cnn.load(other_arch)

    bad_config = tmp_path / "bad_config.pt"
    state["config"] = {"model": "original", "depth": 3}
    torch.save(state, bad_config)
    with pytest.raises(torch_cnn.CheckpointError, match=r"bad_config\.pt.*config"):
        torch_cnn.load(bad_config)


@pytest.mark.parametrize("model", ["original", "resnet"])
def test_a_checkpoint_of_an_older_config_loads_for_inference_not_for_resuming(tmp_path, model):
    """Checkpoints written before the run chose its validation hold ``hold_out_validation`` and
    init 'he_xavier' in their config: their weights still load, with the config's other fields."""
    config = dataclasses.replace(TINY, model=model, init="pytorch", tta_flip=True)
    torch.manual_seed(0)
    network = torch_cnn.build_model(config)
    legacy_config = {**dataclasses.asdict(config), "init": "he_xavier", "hold_out_validation": True}
    state = {"model": network.state_dict(), "ema": None, "optimizer": {}, "scheduler": {},
             "epoch": 1, "config": legacy_config, "history": [{"epoch": 1, "val_acc": 0.5}],
             "rng": {}}  # fmt: skip
    path = torch_cnn.checkpoint_path(tmp_path, 1)
    path.parent.mkdir()
    torch.save(state, path)
    loaded = torch_cnn.load(path)
    assert loaded.config == config  # tta_flip kept: predict_proba evaluates as the run did
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                  network.state_dict().values(), strict=True))  # fmt: skip
    with pytest.raises(torch_cnn.CheckpointError,
                       match=r"model_epoch1\.pt: its config has values Config no longer takes "
                       r"\(hold_out_validation=True, init=he_xavier\).*cannot resume"):  # fmt: skip
        torch_cnn.train(config, *learnable(8, 4, seed=1), tmp_path, device="cpu")


def test_ema_averages_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = torch_cnn.build_model(torch_cnn.RESNET)
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


@pytest.mark.parametrize(("field", "value", "what"), [
    ("epochs", -5, "a positive integer"), ("epochs", 0, "a positive integer"),
    ("epochs", 2.0, "a positive integer"), ("epochs", True, "a positive integer"),
    ("batch_size", 0, "a positive integer"), ("eval_batch_size", "256", "a positive integer"),
    ("lr", 0.0, "a positive finite number"), ("lr", -1e-3, "a positive finite number"),
    ("lr", float("nan"), "a positive finite number"), ("lr", float("inf"), "a positive finite number"),
    ("lr", True, "a positive finite number"), ("weight_decay", -0.1, "a non-negative finite number"),
    ("label_smoothing", 1.0, r"a number in \[0, 1\)"), ("erasing", -0.1, r"a number in \[0, 1\)"),
    ("cutmix", 1.5, r"a number in \[0, 1\)"), ("ema", 1.0, r"a number in \[0, 1\)"),
    ("momentum", 1.0, r"a number in \[0, 1\)"), ("momentum", "0.9", r"a number in \[0, 1\)"),
    ("translate", -1, "a non-negative integer"), ("seed", -1, "a non-negative integer"),
    ("hflip", 1, "True or False"), ("model", 3, r"one of \(.*\)"),
    ("init", "he_xavier", r"one of \('as_marked', 'pytorch'\)"),
])  # fmt: skip
def test_config_rejects_bad_values_naming_field_and_value(field, value, what):
    with pytest.raises(ValueError, match=rf"^Config\.{field} must be {what}, got {re.escape(repr(value))}$"):
        torch_cnn.Config(**{field: value})


def test_config_error_message_reads_as_documented():
    with pytest.raises(ValueError) as error:
        dataclasses.replace(torch_cnn.REPRODUCTION, epochs=-5)
    assert str(error.value) == "Config.epochs must be a positive integer, got -5"


def test_config_accepts_the_edges_of_each_range():
    torch_cnn.Config(epochs=1, batch_size=1, lr=1, weight_decay=0, label_smoothing=0.0,
                     momentum=0.0, ema=0.9999, translate=0, seed=0)  # fmt: skip


def test_the_fast_seam_gives_the_plain_step_off_cuda():
    def step(idx):
        return idx

    assert torch_fast.make_train_step(step, torch_cnn.REPRODUCTION, torch.device("cpu")) is step
    graphed = dataclasses.replace(torch_cnn.REPRODUCTION, cuda_graphs=True)
    assert torch_fast.make_train_step(step, graphed, torch.device("cpu")) is step
    options = torch_fast.optimizer_options(graphed, torch.device("cpu"))
    assert options == {"lr": graphed.lr, "fused": True, "capturable": False}


@pytest.mark.slow
@pytest.mark.real_data
def test_a_loaded_checkpoint_predicts_the_accuracy_its_run_recorded(tmp_path, real_data_dir):
    """predict_proba(load(checkpoint), test images) evaluates as the run did, flip TTA included
    (Config.tta_flip), with no argument: the run's recorded test accuracy, exactly."""
    import torch_run

    from fashion_mnist.data import load_splits

    splits = load_splits(real_data_dir, val_size=300, train_size=600, test_size=400, seed=0)
    config = dataclasses.replace(TINY, epochs=1, batch_size=64, hflip=True, tta_flip=True)
    record = torch_run.run("tta", config, splits, tmp_path, device="cpu")
    model = torch_cnn.load(tmp_path / record["checkpoint"])
    assert model.config.tta_flip
    accuracy = (torch_cnn.predict_proba(model, splits.test_images).argmax(1)
                == splits.test_labels).mean()  # fmt: skip
    assert accuracy == record["test_accuracy"]
    # the override still works, and without the mirror the model is another classifier
    without = torch_cnn.predict_proba(model, splits.test_images, tta_flip=False)
    assert not np.allclose(without, torch_cnn.predict_proba(model, splits.test_images))
