"""fashion_mnist.predict: photos to 28x28 images, bad files, the command line and its JSON."""

from __future__ import annotations

import io
import json

import numpy as np
import numpy_cnn as nc
import pytest
from PIL import Image, ImageDraw, features

from fashion_mnist import predict
from fashion_mnist.data import CLASS_NAMES, CLASS_NAMES_ZH, load_mnist
from fashion_mnist.files import write_json

LIGHT = (235, 232, 228)  # a sheet of paper


def draw_trousers(size=(600, 800), background=LIGHT, mode="RGB") -> Image.Image:
    """A dark pair of trousers on a light background, at photo size."""
    image = Image.new(mode, size, background if mode != "L" else background[0])
    w, h = size
    legs = [(0.35 * w, 0.1 * h), (0.65 * w, 0.1 * h), (0.68 * w, 0.9 * h), (0.55 * w, 0.9 * h),
            (0.5 * w, 0.4 * h), (0.45 * w, 0.9 * h), (0.32 * w, 0.9 * h)]  # fmt: skip
    fill = {"L": 60, "RGB": (40, 50, 90), "RGBA": (40, 50, 90, 255)}[mode]
    ImageDraw.Draw(image).polygon(legs, fill=fill)
    return image


def saved(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


# --- preprocessing ----------------------------------------------------------------------------


def test_drawn_garment_becomes_light_on_black_centred_and_touching_the_long_edges():
    out = predict.preprocess(draw_trousers()).reshape(28, 28)
    assert out.dtype == np.uint8 and out.shape == (28, 28)
    assert out[0].max() > 100 and out[-1].max() > 100  # tall: spans the full height
    assert out[:, :3].max() == 0 and out[:, -3:].max() == 0  # narrow: padded left and right
    assert out.max() > 150 and np.median(out) == 0  # light garment, black background
    cols = np.flatnonzero(out.max(axis=0))
    assert abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1  # centred


def test_grey_background_becomes_exactly_black():
    out = predict.preprocess(draw_trousers(background=(170, 170, 170)))
    assert out.reshape(28, 28)[:, 0].max() == 0 and out.max() > 100


def test_already_dark_background_is_not_negated():
    image = Image.fromarray(predict.preprocess(draw_trousers()).reshape(28, 28))
    again = predict.preprocess(image)
    assert np.corrcoef(again.astype(float), np.asarray(image, float).ravel())[0, 1] > 0.9


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_paths_and_images_give_the_same_result(tmp_path, fmt):
    image = draw_trousers()
    path = saved(image, tmp_path / f"t.{fmt.lower()}", format=fmt, quality=95)
    from_path = predict.preprocess(path).astype(int)
    assert np.abs(from_path - predict.preprocess(image).astype(int)).mean() < (4 if fmt == "JPEG" else 1e-9)


def test_any_size_gives_the_same_image():
    reference = predict.preprocess(draw_trousers()).astype(float)  # 600 x 800
    large = predict.preprocess(draw_trousers(size=(3000, 4000))).astype(float)  # 12 megapixels
    assert np.abs(large - reference).mean() < 3
    for size in ((75, 100), (150, 200)):  # the width rounds to another pixel: a half-pixel shift
        small = predict.preprocess(draw_trousers(size=size)).astype(float)
        assert np.corrcoef(small, reference)[0, 1] > 0.85


def test_grey_l_mode_matches_rgb():
    grey = draw_trousers(mode="L")
    out = predict.preprocess(grey).astype(int)
    assert np.abs(out - predict.preprocess(grey.convert("RGB")).astype(int)).max() <= 1


def test_transparency_is_laid_on_white(tmp_path):
    rgba = draw_trousers(background=(0, 0, 0, 0), mode="RGBA")  # garment on transparent black
    path = saved(rgba, tmp_path / "cutout.png")
    on_white = draw_trousers(background=(255, 255, 255))
    out = predict.preprocess(path).astype(int)
    assert out.max() > 100
    assert np.abs(out - predict.preprocess(on_white).astype(int)).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    upright = draw_trousers()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    path = saved(upright.transpose(Image.Transpose.ROTATE_90), tmp_path / "phone.png", exif=exif)
    assert np.array_equal(predict.preprocess(path), predict.preprocess(upright))


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp(tmp_path):
    path = saved(draw_trousers(), tmp_path / "t.webp", format="WEBP", quality=90)
    reference = predict.preprocess(draw_trousers()).astype(int)
    assert np.abs(predict.preprocess(path).astype(int) - reference).mean() < 4


def test_speckles_on_the_background_are_not_a_garment():
    image = draw_trousers()
    for x, y in ((5, 5), (590, 790), (20, 700)):
        image.putpixel((x, y), (0, 0, 0))  # dust: single dark pixels near the corners
    clean = predict.preprocess(draw_trousers())
    assert np.array_equal(predict.preprocess(image), clean)


# --- bad input --------------------------------------------------------------------------------


def bad_files(folder):
    """{name: (path, words the error must contain)} for every kind of bad input."""
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image at all\n")
    good = io.BytesIO()
    draw_trousers().save(good, "PNG")
    (folder / "truncated.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    jpeg = io.BytesIO()
    draw_trousers().save(jpeg, "JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    Image.new("RGB", (400, 300), "white").save(folder / "white.jpg")
    (folder / "a_folder").mkdir()
    return {
        "missing": (folder / "nope.jpg", "no such file"),
        "folder": (folder / "a_folder", "folder"),
        "empty": (folder / "empty.png", "empty"),
        "text": (folder / "notes.png", "not an image"),
        "truncated png": (folder / "truncated.png", "truncated"),
        "truncated jpeg": (folder / "truncated.jpg", "truncated"),
        "all white": (folder / "white.jpg", "no garment found"),
    }


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "text", "truncated png",
                                  "truncated jpeg", "all white"])  # fmt: skip
def test_bad_input_raises_a_clear_image_error(tmp_path, case):
    path, words = bad_files(tmp_path)[case]
    with pytest.raises(predict.ImageError, match=words):
        predict.preprocess(path)


def constant_model(images):
    """A stand-in model: class i gets probability proportional to i + 1."""
    p = np.arange(1, 11, dtype=np.float64) / 55
    return np.tile(p, (len(images), 1))


def test_predict_files_reports_each_bad_file_and_goes_on(tmp_path):
    cases = bad_files(tmp_path)
    good = saved(draw_trousers(), tmp_path / "good.png")
    paths = [p for p, _ in cases.values()] + [good]
    rows = predict.predict_files(paths, {"stub": constant_model})
    assert [r["file"] for r in rows] == [str(p) for p in paths]  # in order, one row each
    for row, (_, words) in zip(rows, cases.values(), strict=False):
        assert set(row) == {"file", "error"} and words in row["error"]
    assert rows[-1]["model"] == "stub" and rows[-1]["top"][0]["label"] == 9


# --- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory):
    """A run folder with a tiny NumPy checkpoint (2 training steps) recorded in metrics.json."""
    root = tmp_path_factory.mktemp("run")
    folder = root / "cnn-by-myself"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 784), dtype=np.uint8)
    config = nc.TrainConfig(steps=2, batch_size=32, checkpoint_every=2)
    nc.train(nc.build_lenet(), config, images, np.arange(64) % 10, folder / "checkpoints" / "tuned")
    write_json(folder / "metrics.json", {"checkpoint": "checkpoints/tuned/model_step2.npz"})
    return root


def test_json_lines(tmp_path, numpy_run, capsys):
    good = saved(draw_trousers(), tmp_path / "good.jpg")
    code = predict.main([str(good), str(tmp_path / "nope.png"), "--model", "numpy", "--json",
                         "--run-dir", str(numpy_run)])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert code == 1  # one file failed
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"file", "model", "top"} and first["model"] == "numpy"
    assert first["file"] == str(good)
    top = first["top"]
    assert len(top) == 3 and [t["probability"] for t in top] == sorted(
        (t["probability"] for t in top), reverse=True)
    for t in top:
        assert set(t) == {"label", "name", "name_zh", "probability"}
        assert (t["name"], t["name_zh"]) == (CLASS_NAMES[t["label"]], CLASS_NAMES_ZH[t["label"]])
        assert 0 <= t["probability"] <= 1
    assert second == {"file": str(tmp_path / "nope.png"), "error": "no such file"}


def test_text_output_and_saved_preprocessed_image(tmp_path, numpy_run, capsys):
    photo = saved(draw_trousers(), tmp_path / "trousers.jpg")
    code = predict.main([str(photo), "--run-dir", str(numpy_run), "--model", "both",
                         "--save-preprocessed", str(tmp_path / "seen")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    assert out.startswith(f"{photo} (numpy):") and len(out.splitlines()) == 4
    assert "%" in out and "(" in out.splitlines()[1]
    assert "no trained pytorch model" in err  # both asked, only NumPy trained: said once
    seen = np.asarray(Image.open(tmp_path / "seen" / "trousers.png"))
    assert seen.shape == (28, 28) and np.array_equal(seen.ravel(), predict.preprocess(photo))


def test_no_checkpoint_is_one_line_naming_make_run(tmp_path, capsys):
    photo = saved(draw_trousers(), tmp_path / "t.png")
    assert predict.main([str(photo), "--run-dir", str(tmp_path / "nothing")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "`make run`" in err


def test_recorded_but_deleted_checkpoint_names_the_file(tmp_path, capsys):
    folder = tmp_path / "cnn-by-myself"
    write_json(folder / "metrics.json", {"checkpoint": "checkpoints/tuned/model_step7000.npz"})
    photo = saved(draw_trousers(), tmp_path / "t.png")
    assert predict.main([str(photo), "--model", "numpy", "--run-dir", str(tmp_path)]) == 2
    assert "model_step7000.npz not found" in capsys.readouterr().err


# --- the round trip on real images ------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model(real_data_dir, tmp_path_factory):
    """A LeNet trained for 150 steps on 6,000 real training images (about 80% test accuracy)."""
    images, labels = load_mnist(real_data_dir, "train")
    config = nc.TrainConfig(steps=150, batch_size=64, lr=0.05, checkpoint_every=150)
    model = nc.build_lenet()
    nc.train(model, config, images[:6000], labels[:6000], tmp_path_factory.mktemp("small"))
    return model


@pytest.mark.real_data
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_round_trip_through_a_photo(real_data_dir, small_model, tmp_path, fmt):
    """A test image enlarged to 300x300, dark on white, saved and preprocessed comes back close
    to the original, and the model classifies both alike."""
    test_images, _ = load_mnist(real_data_dir, "t10k")
    originals = test_images[:100]
    paths = [saved(predict.as_photo(x), tmp_path / f"{i}.{fmt.lower()}", format=fmt, quality=90)
             for i, x in enumerate(originals)]  # fmt: skip
    back = np.stack([predict.preprocess(p) for p in paths])
    corr = [np.corrcoef(a.astype(float), b.astype(float))[0, 1] for a, b in zip(originals, back, strict=True)]
    assert np.median(corr) > 0.88 and np.mean(np.array(corr) > 0.6) >= 0.9
    same = nc.predict_proba(small_model, originals).argmax(1) == nc.predict_proba(
        small_model, back).argmax(1)
    assert same.mean() >= 0.8
