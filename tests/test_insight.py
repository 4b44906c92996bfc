"""What the networks learned: calibration, confident mistakes, embeddings, the figures in both
languages, the NumPy model's saliency (against finite differences) and PyTorch's Grad-CAM."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from fashion_mnist import REPO_ROOT, insight
from fashion_mnist import insight_plots as ip

PNG = b"\x89PNG\r\n\x1a\n"


def synthetic(n: int = 20000, sharpen: float = 1.0, seed: int = 0):
    """Probabilities with labels drawn from them (calibrated by construction), then sharpened:
    ``softmax(sharpen * z)`` is over-confident for ``sharpen`` > 1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, size=(n, 10))
    p = softmax(logits, axis=1)
    labels = (rng.random(n)[:, None] > p.cumsum(axis=1)).sum(axis=1)
    return softmax(sharpen * logits, axis=1), np.minimum(labels, 9)


# --- Calibration ------------------------------------------------------------------------------


def test_ece_is_near_zero_when_calibrated_and_positive_when_over_confident():
    p, y = synthetic()
    assert insight.expected_calibration_error(p, y) < 0.015
    sharp, y = synthetic(sharpen=3.0)
    assert insight.expected_calibration_error(sharp, y) > 0.1


def test_ece_by_hand():
    # Two bins of 15: confidences 0.9 (right) and 0.6, 0.6 (one right): |1-.9|/3 + 2|.5-.6|/3.
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 0, 0])
    table = insight.reliability(p, y, bins=5)
    assert table["count"].tolist() == [0, 0, 2, 0, 1]
    np.testing.assert_allclose(table["accuracy"], [0, 0, 0.5, 0, 1])
    np.testing.assert_allclose(table["confidence"], [0, 0, 0.6, 0, 0.9])
    assert insight.expected_calibration_error(p, y, bins=5) == pytest.approx(0.1 / 3 + 0.2 / 3)


def test_temperature_undoes_over_confidence_and_keeps_predictions():
    sharp, y = synthetic(sharpen=3.0)
    t = insight.fit_temperature(sharp, y)
    assert t == pytest.approx(3.0, rel=0.1)
    scaled = insight.apply_temperature(sharp, t)
    np.testing.assert_array_equal(scaled.argmax(axis=1), sharp.argmax(axis=1))
    assert insight.expected_calibration_error(scaled, y) < insight.expected_calibration_error(
        sharp, y) / 4  # fmt: skip
    np.testing.assert_allclose(insight.apply_temperature(sharp, 1.0), sharp, atol=1e-12)


def test_calibration_fits_on_validation_and_measures_test():
    val, val_y = synthetic(sharpen=2.0, seed=1)
    test, test_y = synthetic(sharpen=2.0, seed=2)
    result = insight.calibration(val, val_y, test, test_y, bins=10)
    assert result["temperature"] == pytest.approx(insight.fit_temperature(val, val_y))
    assert result["temperature"] > 1
    assert result["ece_after"] < result["ece_before"]
    assert result["nll_after"] < result["nll_before"]
    assert result["ece_before"] == pytest.approx(insight.expected_calibration_error(test, test_y, 10))
    assert set(result["bins"]) == {"before", "after"}
    assert result["bins"]["after"]["count"].sum() == len(test_y)


@pytest.mark.parametrize("probabilities, labels, message", [
    (np.ones((3, 10)) / 10, np.zeros(4, dtype=int), "labels must have shape"),
    (np.ones((3, 10)), np.zeros(3, dtype=int), "sum to 1"),
    (np.ones(10) / 10, np.zeros(1, dtype=int), "shape"),
    (np.ones((3, 10)) / 10, np.full(3, 10), r"\[0, 10\)"),
    (np.ones((3, 10)) / 10, np.zeros(3), "integers"),
    (np.full((3, 10), np.nan), np.zeros(3, dtype=int), "finite"),
])  # fmt: skip
def test_bad_inputs_are_named(probabilities, labels, message):
    with pytest.raises(ValueError, match=message):
        insight.expected_calibration_error(probabilities, labels)


def test_bad_parameters_are_named():
    p, y = synthetic(100)
    with pytest.raises(ValueError, match="bins"):
        insight.reliability(p, y, bins=0)
    with pytest.raises(ValueError, match="temperature"):
        insight.apply_temperature(p, 0.0)
    with pytest.raises(ValueError, match="k must"):
        insight.confident_mistakes(p, y, k=0)
    with pytest.raises(ValueError, match="val_probabilities"):
        insight.calibration(p[:, :5], y, p, y)


# --- Mistakes and embeddings ------------------------------------------------------------------


def test_confident_mistakes_are_the_surest_wrong_answers_in_order():
    p = np.array([[0.7, 0.3], [0.2, 0.8], [0.95, 0.05], [0.6, 0.4], [0.1, 0.9]])
    y = np.array([1, 1, 1, 0, 0])  # wrong: 0 (0.7), 2 (0.95), 4 (0.9)
    found = insight.confident_mistakes(p, y, k=2)
    assert [m["index"] for m in found] == [2, 4]
    assert found[0] == {"index": 2, "label": 1, "predicted": 0, "probability": 0.95}
    assert [m["index"] for m in insight.confident_mistakes(p, y, k=10)] == [2, 4, 0]


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_embedding_is_deterministic_and_stratified(method):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 40)
    feats = rng.normal(size=(400, 60)) + 3 * np.eye(10)[labels] @ rng.normal(size=(10, 60))
    coords, y, idx = insight.embed_2d(feats, labels, n=100, method=method, seed=1)
    again, _, idx2 = insight.embed_2d(feats, labels, n=100, method=method, seed=1)
    assert coords.shape == (100, 2) and np.isfinite(coords).all()
    np.testing.assert_array_equal(coords, again)
    np.testing.assert_array_equal(idx, idx2)
    assert np.bincount(y).tolist() == [10] * 10
    np.testing.assert_array_equal(y, labels[idx])
    with pytest.raises(ValueError, match="method"):
        insight.embed_2d(feats, labels, method="umap")


# --- Figures ----------------------------------------------------------------------------------


def _figures():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 784), dtype=np.uint8)
    p, y = synthetic(300, sharpen=2.0)
    table = insight.calibration(p, y, p, y)
    return {
        "filters": (ip.plot_filters, {"weights": rng.normal(size=(6, 1, 5, 5))}),
        "maps": (ip.plot_feature_maps, {"image": images[0], "maps": [
            ("conv1", rng.normal(size=(6, 28, 28))), ("pool1", rng.random((6, 14, 14)))]}),
        "embedding": (ip.plot_embedding, {"coords": rng.normal(size=(50, 2)),
                                          "labels": np.arange(50) % 10}),
        "saliency": (ip.plot_saliency, {"images": images[:4], "maps": rng.normal(size=(4, 28, 28)),
                                        "labels": [0, 1, 2, 3], "predicted": [0, 1, 6, 3],
                                        "title": {"en": "Saliency", "zh": "显著图"}}),
        "reliability": (ip.plot_reliability, {
            "before": table["bins"]["before"], "after": table["bins"]["after"],
            "ece_before": table["ece_before"], "ece_after": table["ece_after"],
            "temperature": table["temperature"]}),
        "confusion": (ip.plot_confusion_errors, {"confusion": rng.integers(0, 50, (10, 10))}),
        "mistakes": (ip.plot_confident_mistakes, {
            "images": images, "mistakes": insight.confident_mistakes(p[:12], y[:12], k=5)}),
        "f1": (ip.plot_per_class_f1, {"f1_by_model": {"NumPy": rng.random(10),
                                                      "PyTorch": rng.random(10)}}),
    }  # fmt: skip


@pytest.mark.parametrize("name", list(_figures()))
def test_every_figure_is_drawn_in_both_languages(tmp_path, name):
    plot, kwargs = _figures()[name]
    paths = ip.both_languages(plot, tmp_path / f"{name}.png", **kwargs)
    assert paths == {"en": tmp_path / f"{name}.png", "zh": tmp_path / f"{name}.zh.png"}
    en, zh = (paths[lang].read_bytes() for lang in ("en", "zh"))
    assert en.startswith(PNG) and zh.startswith(PNG) and en != zh
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.png", f"{name}.zh.png"]


def test_chinese_text_uses_a_cjk_font_and_lang_may_be_positional(tmp_path):
    if ip.cjk_font() is None:
        pytest.skip("no CJK font installed (fonts-noto-cjk)")
    fig = ip.plot_confusion_errors(np.eye(10) + 1, tmp_path / "c.zh.png", "zh")
    ticks = fig.axes[0].get_yticklabels()
    assert ticks[1].get_text() == "裤子"
    assert ticks[1].get_fontfamily()[0] == ip.cjk_font()
    with pytest.raises(ValueError, match="lang"):
        ip.plot_confusion_errors(np.eye(10), None, "fr")


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
def test_without_a_cjk_font_chinese_figures_are_still_drawn(tmp_path, monkeypatch):
    monkeypatch.setattr(ip, "CJK_FONTS", ("No Such Font",))
    ip.cjk_font.cache_clear()
    try:
        with pytest.warns(UserWarning, match="no CJK font"):
            ip.plot_filters(np.ones((2, 1, 3, 3)), tmp_path / "f.zh.png", lang="zh")
    finally:
        ip.cjk_font.cache_clear()
    assert (tmp_path / "f.zh.png").read_bytes().startswith(PNG)


# --- The NumPy model: features, feature maps, saliency ----------------------------------------


@pytest.fixture(scope="module")
def lenet():
    import numpy_cnn

    model = numpy_cnn.build_lenet(seed=3, dtype=np.float64)
    rng = np.random.default_rng(3)
    # Batch norm unlike its initial identity: its eval-mode gradient must use these
    for key, value in {**model.buffers(), **model.params()}.items():
        if key.startswith("bn"):
            value[...] = rng.uniform(0.5, 1.5, value.shape)
    return numpy_cnn, model


def test_numpy_features_and_feature_maps(lenet):
    cnn, model = lenet
    images = np.random.default_rng(0).integers(0, 256, size=(5, 784), dtype=np.uint8)
    feats = cnn.features(model, images, batch_size=2)
    assert feats.shape == (5, 84) and (feats >= 0).all()  # after fc2's ReLU
    # fc3 applied to them gives the model's logits
    logits = model.params()["fc3_weights"].T @ feats.T + model.params()["fc3_bias"][:, None]
    np.testing.assert_allclose(cnn.softmax(logits).T, cnn.predict_proba(model, images), atol=1e-10)
    maps = cnn.feature_maps(model, images[1])
    assert [(name, m.shape) for name, m in maps] == [
        ("conv1", (6, 28, 28)), ("pool1", (6, 14, 14)), ("conv2", (16, 10, 10)),
        ("pool2", (16, 5, 5))]  # fmt: skip


def test_numpy_saliency_matches_finite_differences(lenet):
    cnn, model = lenet
    images = np.random.default_rng(1).integers(0, 256, size=(3, 784), dtype=np.uint8)
    classes = np.array([2, 7, 7])
    grad = cnn.saliency(model, images, classes)
    assert grad.shape == (3, 28, 28)
    assert model.layers[0].input_grad is False  # restored
    x = cnn.to_input(images, np.float64)
    eps = 1e-6
    for n, (i, j) in enumerate([(14, 14), (10, 17), (20, 8)]):
        for pixel in [(i, j), (i + 1, j - 2)]:
            up, down = x.copy(), x.copy()
            up[0, pixel[0], pixel[1], n] += eps
            down[0, pixel[0], pixel[1], n] -= eps
            numeric = (model.forward(up, train=False)[classes[n], n]
                       - model.forward(down, train=False)[classes[n], n]) / (2 * eps)  # fmt: skip
            assert grad[n, pixel[0], pixel[1]] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    assert np.abs(grad).max() > 0
    assert not np.allclose(grad[1], cnn.saliency(model, images[1:2], 3)[0])  # another class
    with pytest.raises(ValueError, match="classes"):
        cnn.saliency(model, images, 10)


# --- The PyTorch model: features, feature maps, Grad-CAM --------------------------------------


@pytest.fixture(scope="module")
def torch_net():
    torch = pytest.importorskip("torch")
    import torch_insight
    import torch_models

    torch.manual_seed(0)
    model = torch_models.original_net(se=True).eval()
    return torch_insight, model


def test_torch_features_and_feature_maps(torch_net):
    import torch

    ti, model = torch_net
    images = np.random.default_rng(0).integers(0, 256, size=(5, 784), dtype=np.uint8)
    feats = ti.features(model, images, batch_size=2)
    assert feats.shape == (5, 512)
    with torch.no_grad():
        logits = model(torch.as_tensor(images).reshape(-1, 1, 28, 28).float() / 255)
        from_features = model.fc2(torch.as_tensor(feats))
    np.testing.assert_allclose(from_features.numpy(), logits.numpy(), atol=1e-5)
    maps = ti.feature_maps(model, images[0])
    assert [(name, m.shape) for name, m in maps] == [
        ("conv1", (32, 28, 28)), ("pool1", (32, 14, 14)), ("conv2", (64, 14, 14)),
        ("pool2", (64, 7, 7))]  # fmt: skip


def test_grad_cam_properties(torch_net):
    ti, model = torch_net
    images = np.random.default_rng(2).integers(0, 256, size=(4, 784), dtype=np.uint8)
    a = ti.grad_cam(model, images, [0, 1, 2, 3])
    b = ti.grad_cam(model, images, [5, 6, 7, 8])
    assert a.shape == (4, 28, 28) and a.dtype == np.float32
    assert (a >= 0).all() and (a <= 1 + 1e-6).all()
    peaks = a.reshape(4, -1).max(axis=1)
    assert (np.isclose(peaks, 1) | (peaks == 0)).all()  # each map divided by its maximum
    assert not np.allclose(a, b)
    assert all(p.grad is None for p in model.parameters())  # the model is left untouched
    first = ti.grad_cam(model, images, 0, layer=model.conv1)
    assert first.shape == (4, 28, 28) and not np.allclose(first[0], a[0])
    with pytest.raises(ValueError, match="classes"):
        ti.grad_cam(model, images, 10)


def test_grad_cam_on_the_resnet():
    torch = pytest.importorskip("torch")
    import torch_insight
    import torch_models

    torch.manual_seed(0)
    model = torch_models.resnet(widths=(4, 8, 8), blocks=1).eval()
    images = np.random.default_rng(3).integers(0, 256, size=(2, 784), dtype=np.uint8)
    assert torch_insight.grad_cam(model, images, [1, 2]).shape == (2, 28, 28)
    assert torch_insight.features(model, images).shape == (2, 8)


# --- The last full run's NumPy model (skipped without the data or its checkpoint) -------------


@pytest.mark.real_data
def test_temperature_scaling_does_not_worsen_the_tuned_numpy_model(real_data_dir):
    from fashion_mnist.data import load_splits
    from fashion_mnist.predict import checkpoints
    from fashion_mnist.results import import_model_module

    recorded = checkpoints(REPO_ROOT).get("numpy_tuned")
    if recorded is None or recorded.path is None or not recorded.path.is_file():
        pytest.skip("no checkpoint of a full run's NumPy tuned model (make run)")
    cnn = import_model_module("cnn-by-myself", "numpy_cnn")
    model = cnn.load(recorded.path)
    splits = load_splits(real_data_dir)
    test = cnn.predict_proba(model, splits.test_images)
    result = insight.calibration(cnn.predict_proba(model, splits.val_images), splits.val_labels,
                                 test, splits.test_labels)  # fmt: skip
    assert result["ece_after"] <= result["ece_before"] + 0.005
    assert 0.5 < result["temperature"] < 5
