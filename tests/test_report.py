"""The report builder: built from a FAKE pair of runs (tests/report_fixtures.py), then checked.

Every figure and link resolves; every number in the tables equals the metrics it came from (the
Markdown tables are parsed back); the HTML loads in headless Chromium with no broken image; a
missing input is named and its section marked "not run"; quick builds say QUICK.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import re
import shutil
import statistics
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_fixtures import (
    BEFORE_COMMIT,
    BENCH_BEFORE,
    BENCH_RESULTS,
    EPOCH_BENCH,
    HARDWARE,
    LAYER_BENCH,
    LAYER_BENCH_BEFORE,
    ROBUSTNESS,
    make_fake_bench,
    make_fake_robustness,
    make_fake_runs,
)

from fashion_mnist import REPO_ROOT, original
from fashion_mnist.files import read_json, write_json

_spec = importlib.util.spec_from_file_location("build_report", REPO_ROOT / "report/build_report.py")
build_report = importlib.util.module_from_spec(_spec)
sys.modules["build_report"] = build_report  # dataclasses look their module up
_spec.loader.exec_module(build_report)

HAVE_CHROMIUM = build_report.find_chromium() is not None
NEEDS_CHROMIUM = pytest.mark.skipif(
    not HAVE_CHROMIUM, reason="chromium not installed (Debian: apt-get install chromium)"
)
README_TEXT = "# Project\n\nIntro.\n\n## Results\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\nTail.\n"
MODELS = ("cnn-by-myself", "cnn-by-pytorch")


# --- Building -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def figure_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("figure-cache")


def _build(root: Path, figure_cache: Path, *, quick=False, pdf=False, readme=True, damage=None,
           bench="current", epoch_bench=True, robustness=True, **fake):  # fmt: skip
    """Fake runs under ``root/runs`` (``damage(runs)`` may then break them), built into
    ``root/out``; a README with a results block at ``root/README.md`` unless ``readme`` is False;
    a fake speed benchmark at ``root/bench_lenet.json`` of the shape ``bench`` (None: none), with
    ``root/bench_epoch.json`` beside it for the "current" shape: as made when ``epoch_bench`` is
    True, else removed, and replaced by ``epoch_bench`` when that is text; the robustness results
    at ``root/robustness/`` when ``robustness``."""
    runs = make_fake_runs(root / "runs", figure_cache=figure_cache, quick=quick, **fake)
    if damage is not None:
        damage(runs)
    bench_path = root / "bench_lenet.json"
    bench_data = make_fake_bench(bench_path, shape=bench) if bench else None
    if epoch_bench is not True:
        (root / "bench_epoch.json").unlink()
        if epoch_bench is not None:
            (root / "bench_epoch.json").write_text(epoch_bench, encoding="utf-8")
    robustness_path = (make_fake_robustness(root / "robustness", figure_cache) if robustness
                       else root / "robustness" / "robustness.json")  # fmt: skip
    readme_path = None
    if readme:
        readme_path = root / "README.md"
        readme_path.write_text(README_TEXT, encoding="utf-8")
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        result = build_report.build(runs["myself"], runs["pytorch"], root / "out",
                                    runs["notebooks"], quick=quick, readme=readme_path,
                                    pdf=pdf, bench=bench_path, robustness=robustness_path)  # fmt: skip
    out = root / "out"
    return {
        "out": out, "runs": runs, "result": result, "metrics": runs["metrics"],
        "messages": stderr.getvalue() + stdout.getvalue(), "readme": readme_path,
        "bench": bench_data, "bench_path": bench_path,
        **_read_outputs(out),
    }  # fmt: skip


def _read_outputs(out: Path) -> dict[str, str]:
    """The four generated documents of a build, by the keys the tests use."""
    names = {"md": "report.md", "zh": "report.zh.md", "html": "report.html",
             "zh_html": "report.zh.html"}  # fmt: skip
    return {key: (out / name).read_text(encoding="utf-8") for key, name in names.items()}


@pytest.fixture(scope="module")
def full(tmp_path_factory, figure_cache):
    """Both models, every extra, notebooks, a README: the complete report (with a PDF if we can)."""
    return _build(tmp_path_factory.mktemp("full"), figure_cache, pdf=HAVE_CHROMIUM)


@pytest.fixture(scope="module", params=["fake", "quick-run"])
def built(request, tmp_path_factory):
    """The report of the fake runs, then of a real quick run of both notebooks (needs the data)."""
    if request.param == "fake":
        return request.getfixturevalue("full")
    runs = request.getfixturevalue("quick_runs")  # both notebooks executed in quick mode
    root = tmp_path_factory.mktemp("quick-run")
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        build_report.build(runs / MODELS[0], runs / MODELS[1], root / "out",
                           runs / "notebooks", quick=True, pdf=False)  # fmt: skip
    out = root / "out"
    return {
        "out": out, "messages": stderr.getvalue() + stdout.getvalue(),
        "metrics": {m: read_json(runs / m / "metrics.json") for m in MODELS},
        **_read_outputs(out),
    }  # fmt: skip


@pytest.fixture(scope="module")
def only_myself(tmp_path_factory, figure_cache):
    """Only cnn-by-myself has run; no executed notebooks either."""
    return _build(tmp_path_factory.mktemp("only-myself"), figure_cache, pytorch=False,
                  notebooks=False)  # fmt: skip


# --- Parsing the report back ----------------------------------------------------------------------


def tables(markdown: str) -> dict[str, list[list[str]]]:
    """Every table announced by ``<!-- table: ID -->``: its rows (header first, no separator)."""
    found = {}
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        match = re.fullmatch(r"<!-- table: (\S+) -->", line.strip())
        if not match:
            continue
        rows, j = [], i + 1
        while j < len(lines) and not lines[j].startswith("|"):
            assert lines[j].strip() == "", f"table {match[1]}: text between comment and table"
            j += 1
        while j < len(lines) and lines[j].startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", lines[j].strip())[1:-1]]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
            j += 1
        assert match[1] not in found, f"two tables named {match[1]}"
        assert len(rows) >= 2, f"table {match[1]} is empty"
        assert len({len(r) for r in rows}) == 1, f"table {match[1]}: ragged rows"
        found[match[1]] = rows
    return found


def num(text: str) -> float:
    """A table cell as a number: bold, ticks, thousands separators and % removed."""
    cleaned = text.replace("**", "").replace(",", "").replace("%", "").replace("✓", "").strip()
    return float(cleaned)


def pct(x: float):
    return pytest.approx(100 * x, abs=0.005 + 1e-9)


def readme_rows(readme: Path) -> list[list[str]]:
    """The rows of the table in the README's results block (no header, no separator)."""
    text = readme.read_text(encoding="utf-8")
    block = text.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    lines = [line.strip() for line in block.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def note_list(markdown: str) -> list[str]:
    """The bullets of the report's list of missing or incomplete inputs (English or Chinese)."""
    match = re.search(r"^\*\*(?:Inputs missing or incomplete|缺失或不完整的输入)\*\*.*\n\n((?:- .*\n)+)",
                      markdown, re.M)  # fmt: skip
    return [line[2:] for line in match[1].splitlines()] if match else []


def runs_of(metrics: dict) -> list[dict]:
    return [metrics] + ([metrics["reproduction"]] if metrics.get("reproduction") else [])


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def _local(href: str) -> bool:
    return not re.match(r"^(https?:|mailto:|#|data:)", href)


# --- Tests ------------------------------------------------------------------------------------------


def test_full_build_writes_every_output(full):
    out = full["out"]
    for name in ("report.md", "report.zh.md", "report.html", "report.zh.html"):
        assert (out / name).stat().st_size > 1000, name
    for model in MODELS:
        assert (out / "notebooks" / f"{model}.html").is_file()
    if HAVE_CHROMIUM:
        for name in ("report.pdf", "report.zh.pdf"):
            assert (out / name).read_bytes()[:5] == b"%PDF-"
        assert '<a href="report.pdf">PDF</a>' in full["html"]
    assert "QUICK" not in full["md"].splitlines()[0]
    assert full["md"].count("**Not run:**") == 1  # only the ResNet, which needs a GPU
    assert "**Not run:** the ResNet (needs a GPU: `make -C experiments resnet`)" in full["md"]


def test_every_figure_and_link_in_the_markdown_exists(built):
    out = built["out"]
    for text in (built["md"], built["zh"]):
        targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)
        images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
        assert len(images) >= 10
        for target in filter(_local, targets):
            assert (out / target).is_file(), f"{target} is referenced but missing"
    # every figure a main run lists is in the report, and the reproductions' curves and matrix
    for model, metrics in built["metrics"].items():
        for run in runs_of(metrics):
            for key in run["figures"]:
                if run is metrics or key != "misclassified":
                    for text in (built["md"], built["zh"]):
                        assert f"figures/{model}-{run['name']}-{key}.png" in text


def test_html_is_self_contained_and_links_resolve(built):
    for text in (built["html"], built["zh_html"]):
        refs = _Refs()
        refs.feed(text)
        assert len(refs.images) >= 10
        for src in refs.images:
            assert src.startswith("data:image/png;base64,"), src[:80]
            assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        local = [h for h in refs.links if _local(h)]
        exported = list((built["out"] / "notebooks").glob("*.html"))
        assert len([h for h in local if h.startswith("notebooks/")]) == len(exported)
        for href in local:
            assert (built["out"] / href).is_file(), f"{href} is linked but missing"
    assert "<table>" in built["html"] and "<!-- table: comparison/all -->" in built["html"]


def same(cell: str, value, scale: float = 1.0, tol: float = 0.0) -> bool:
    """A table cell shows ``value`` (times ``scale``) to the table's precision; '–' for None."""
    if value is None:
        return cell == "–"
    return num(cell) == pytest.approx(scale * value, abs=tol + 1e-9)


def same_pct(cell: str, value) -> bool:
    return same(cell, value, 100, 0.005)


@pytest.mark.parametrize("lang", ["md", "zh"])
def test_tables_equal_the_metrics(built, lang):
    t = tables(built[lang])
    myself, torch = built["metrics"]["cnn-by-myself"], built["metrics"]["cnn-by-pytorch"]
    # classes: counts per split
    rows = t["classes"][1:]
    for i, row in enumerate(rows):
        for col, split in zip((3, 4, 5), ("train", "val", "test"), strict=True):
            assert same(row[col], myself["class_counts"][split][i])
    # per-checkpoint tables (NumPy): step, accuracies, the validation-selected mark
    for run in runs_of(myself):
        rows = t[f"checkpoints/cnn-by-myself/{run['name']}"][1:]
        assert len(rows) == len(run["checkpoints"])
        for row, c in zip(rows, run["checkpoints"], strict=True):
            assert int(row[0]) == c["step"]
            assert same_pct(row[2], c["val_accuracy"]) and same_pct(row[3], c["test_accuracy"])
            assert (row[4] == "✓") == (c["step"] == run["selected_step"])
        assert [r[4] for r in rows].count("✓") == 1
    # per-epoch tables (PyTorch)
    for run in runs_of(torch):
        rows = t[f"epochs/cnn-by-pytorch/{run['name']}"][1:]
        assert len(rows) == len(run["epochs"])
        for row, e in zip(rows, run["epochs"], strict=True):
            assert int(row[0]) == e["epoch"]
            assert same(row[1], e["train_loss"], tol=5e-5) and same_pct(row[2], e["train_acc"])
            assert same(row[3], e.get("val_loss"), tol=5e-5) and same_pct(row[4], e.get("val_acc"))
            assert same_pct(row[6], e.get("test_acc"))
            assert same(row[8], e.get("seconds"), tol=0.051)
            assert (row[9] == "✓") == (e["epoch"] == run["selected_epoch"])
        assert [r[9] for r in rows].count("✓") == 1
    # layers: parameters per layer and the total (a reproduction of the same network has none)
    for model, metrics in built["metrics"].items():
        for run in runs_of(metrics):
            if run is not metrics and run["layers"] == metrics["layers"]:
                assert f"layers/{model}/{run['name']}" not in t
                continue
            rows = t[f"layers/{model}/{run['name']}"][1:]
            assert [num(r[2]) for r in rows[:-1]] == [layer["params"] for layer in run["layers"]]
            assert num(rows[-1][2]) == run["params"]
    # the comparison table: one row per run, in order (then the ResNet, when it ran)
    rows = t["comparison/all"][1:]
    expected = [(m, r) for m in MODELS for r in runs_of(built["metrics"][m])]
    if torch.get("resnet"):
        expected.append(("cnn-by-pytorch", torch["resnet"]))
    assert len(rows) == len(expected)
    for row, (model, run) in zip(rows, expected, strict=True):
        assert row[0] == model
        assert same(row[3], run["params"])
        assert same_pct(row[4], run["test_accuracy"]) and same_pct(row[5], run["val_accuracy"])
        assert same(row[6], run["train_seconds"], tol=0.051)
        assert same(row[7], run["images_per_second"], tol=0.051)
        assert row[8] == run["hardware"]
        assert same(row[9], built["metrics"][model].get("model_code_lines"))
    # test-set results of the main runs: confusion counts, per-class metrics, confused pairs
    for model, metrics in built["metrics"].items():
        report, name = metrics["test_report"], metrics["name"]
        rows = t[f"confusion/{model}/{name}"][1:]
        assert [[int(num(c)) for c in r[1:]] for r in rows] == report["confusion_matrix"]
        rows = t[f"per-class/{model}/{name}"][1:]
        for row, pc in zip(rows, report["per_class"], strict=True):
            assert same_pct(row[2], pc["precision"]) and same_pct(row[3], pc["recall"])
            assert same_pct(row[4], pc["f1"]) and same(row[5], pc["support"])
        rows = t[f"confused/{model}/{name}"][1:]
        assert [int(num(r[2])) for r in rows] == [p["count"] for p in report["most_confused"]]
        pairs = zip(rows, report["most_confused"], strict=True)
        assert all(same_pct(r[3], p["rate"]) for r, p in pairs)
    # the original's results beside ours
    rows = t["original"][1:]
    for row, model in zip(rows, MODELS, strict=True):
        metrics = built["metrics"][model]
        assert same_pct(row[1], original.RESULTS[model])
        assert same_pct(row[2], (metrics.get("reproduction") or {}).get("test_accuracy"))
        assert same_pct(row[3], metrics["test_accuracy"])
    # ablation and ensemble (a run may have skipped them)
    if torch.get("ablation"):
        rows = t["ablation"][1:]
        for row, a in zip(rows, torch["ablation"]["rows"], strict=True):
            assert row[0] == a["name"]
            assert same_pct(row[2], a["val_accuracy"]) and same_pct(row[3], a["test_accuracy"])
            assert same(row[4], a["train_seconds"], tol=0.051)
    if torch.get("ensemble"):
        rows, ens = t["ensemble"][1:], torch["ensemble"]
        for row, name in zip(rows[:-1], ens["members"], strict=True):
            assert same_pct(row[1], ens["member_test_accuracies"][name])
        assert same_pct(rows[-1][1], ens["test_accuracy"])
    if torch.get("gpu_runs"):
        rows = t["gpu-runs"][1:]
        for row, r in zip(rows, torch["gpu_runs"]["rows"], strict=True):
            assert row[:2] == [r["name"], r["description"]] and row[7] == r["hardware"]
            assert [int(row[2]), int(row[3])] == [r["epochs"], r["selected_epoch"]]
            assert same_pct(row[4], r["val_accuracy"]) and same_pct(row[5], r["test_accuracy"])
    # public reference points: each constant is there, and ours are in it
    values = [num(r[1]) for r in t["references"][1:]]
    assert values == sorted(values)
    for *_, acc in original.REFERENCE_POINTS:
        assert pct(acc) in values
    assert pct(myself["test_accuracy"]) in values and pct(torch["test_accuracy"]) in values
    # provenance: stages with times, training time from the metrics
    stage_rows = t["stages"][1:]
    assert any(same(r[1], myself["train_seconds"], tol=0.051) for r in stage_rows)
    assert any("nbconvert" in r[0] or "notebook" in r[0] for r in stage_rows)


def test_the_reproduction_over_seeds_is_reported(full):
    """The seeds' spread (metrics 'seeds', from experiments/summarise.py's over_seeds) in the PyTorch section and
    the conclusions, beside the original's mean over the same epochs, in both languages."""
    seeds = full["metrics"]["cnn-by-pytorch"]["seeds"]
    test, later = seeds["test_accuracy"], seeds["later_half"]
    theirs = statistics.fmean(original.TORCH_TEST_ACC[10:20])
    md, zh = " ".join(full["md"].split()), " ".join(full["zh"].split())
    assert (f"over 3 seeds (0, 1, 2), the test accuracy at the validation-selected epoch is "
            f"{test['mean']:.2%} ± {100 * test['std']:.2f} points (mean ± standard deviation; from "
            f"{test['min']:.2%} to {test['max']:.2%}), and the mean test accuracy over epochs 11-20 "
            f"is {later['mean']:.2%} ± {100 * later['std']:.2f} points (the original's one run: "
            f"{theirs:.2%} over the same epochs).") in md  # fmt: skip
    assert f"({test['mean']:.2%} ± {100 * test['std']:.2f} points over 3 seeds)" in md
    assert (f"3 个种子（0, 1, 2）下，按验证集选出的轮次的测试准确率为 {test['mean']:.2%} ± "
            f"{100 * test['std']:.2f} 个百分点（均值 ± 标准差；最低 {test['min']:.2%}，最高 "
            f"{test['max']:.2%}），第 11-20 轮测试准确率的平均为 {later['mean']:.2%} ± "
            f"{100 * later['std']:.2f} 个百分点（原报告的单次运行在相同轮次为 {theirs:.2%}）。") in zh  # fmt: skip
    assert f"（3 个种子：{test['mean']:.2%} ± {100 * test['std']:.2f} 个百分点）" in zh
    assert "92.69%" in md  # the original's epochs 11-20, as its report lists them


def test_the_initialisations_over_seeds_are_reported(full):
    """The metrics' 'init_seeds' (experiments/summarise.py's seeds_by_init) as a table in the PyTorch section, a
    row per initialisation and one for the original, what was left out below it; both languages."""
    by_init = full["metrics"]["cnn-by-pytorch"]["init_seeds"]
    theirs = statistics.fmean(original.TORCH_TEST_ACC[10:20])
    md, zh = " ".join(full["md"].split()), " ".join(full["zh"].split())
    for text, original_row in ((full["md"], ["the original", "one run, selected on test"]),
                               (full["zh"], ["原报告", "单次运行，按测试集选择"])):  # fmt: skip
        rows = tables(text)["init-seeds"]
        assert [r[:3] for r in rows[1:]] == [
            ["`he_xavier`", "cuda_graphs=True", "NVIDIA Fake GPU 80GB"],
            ["`pytorch`", "init=pytorch, cuda_graphs=True", "NVIDIA Fake GPU 80GB"],
            ["`as_marked`", "init=as_marked", HARDWARE],
            ["`he_xavier`", "hold_out_validation=False", HARDWARE],
            ["`pytorch`", "init=pytorch, hold_out_validation=False", HARDWARE],
            [*original_row, ""]]  # fmt: skip
        for row, g in zip(rows[1:], by_init["groups"], strict=False):
            test, later, first = g["test_accuracy"], g["later_half"], g["epoch_1"]
            assert row[3:] == [str(len(g["rows"])),
                               f"{100 * test['mean']:.2f} ± {100 * test['std']:.2f}",
                               f"{100 * later['mean']:.2f} ± {100 * later['std']:.2f}",
                               f"{first['train_loss']:.4f}", f"{100 * first['train_acc']:.2f}",
                               f"{100 * first['test_acc']:.2f}"]  # fmt: skip
        assert rows[-1][3:] == ["1", "93.00", f"{100 * theirs:.2f}", "0.4571", "83.49", "87.97"]
    assert ("Our preset extends the marks to every layer, with zero biases (`init=he_xavier`); "
            "`init=as_marked` follows the table to the letter and leaves the other layers and every "
            "bias at PyTorch's defaults; `init=pytorch` keeps the defaults everywhere.") in md  # fmt: skip
    assert ("`make -C experiments gpu` trains the reproduction over seeds with `init=he_xavier` and "
            "`init=pytorch` on a GPU (the step replayed") in md  # fmt: skip
    assert ("`make -C experiments init-seeds` trains the reproduction over seeds with `init=as_marked`, "
            "validation held out as in the notebook.") in md  # fmt: skip
    assert "`make -C experiments gpu` 在 GPU 上用多个随机种子训练复现，各组设置：`init=he_xavier`、`init=pytorch`（" in zh
    assert "`make -C experiments init-seeds` 像笔记本一样留出验证集，用多个随机种子训练复现，各组设置：`init=as_marked`。" in zh
    marked = by_init["groups"][2]["test_accuracy"]
    assert (f"; selected on validation as well, it gives {marked['mean']:.2%} ± "
            f"{100 * marked['std']:.2f} points over 4 seeds with `init=as_marked`; trained as the "
            "original was") in md  # the conclusions  # fmt: skip
    assert (f"；同样按验证集选择，`init=as_marked` 为 {marked['mean']:.2%} ± "
            f"{100 * marked['std']:.2f} 个百分点（4 个种子）；按原报告的方式训练") in zh  # fmt: skip
    assert ("`make -C experiments all-data` trains the reproduction as it did (`hold_out_validation=False`) over "
            "seeds, with `init=he_xavier` and `init=pytorch`.") in md  # fmt: skip
    assert "the last epoch; the test set selects" in md
    assert ("`make -C experiments all-data` 按原报告的方式（`hold_out_validation=False`）用多个随机种子训练复现，各组设置："
            "`init=he_xavier`、`init=pytorch`。") in zh and "取最后一轮（测试集不参与选择）" in zh
    he_xavier, pytorch = (g["test_accuracy"] for g in by_init["groups"][3:])
    assert ("Trained as the original was, the reproduction's last epoch gives "
            f"{he_xavier['mean']:.2%} ± {100 * he_xavier['std']:.2f} points over 3 seeds (from "
            f"{he_xavier['min']:.2%} to {he_xavier['max']:.2%}) with `init=he_xavier` and "
            f"{pytorch['mean']:.2%} ± {100 * pytorch['std']:.2f} points over 2 seeds (from "
            f"{pytorch['min']:.2%} to {pytorch['max']:.2%}) with `init=pytorch`. The original's "
            "last epoch gave 92.64%, and its best epoch, picked on the test set, 93.00%.") in md  # fmt: skip
    assert (f"按原报告的方式训练时，最后一轮的测试准确率：`init=he_xavier` 为 {he_xavier['mean']:.2%} ± "
            f"{100 * he_xavier['std']:.2f} 个百分点（3 个种子，最低 {he_xavier['min']:.2%}，最高 "
            f"{he_xavier['max']:.2%}）；`init=pytorch` 为 {pytorch['mean']:.2%} ± "
            f"{100 * pytorch['std']:.2f} 个百分点（2 个种子，最低 {pytorch['min']:.2%}，最高 "
            f"{pytorch['max']:.2%}）。原报告最后一轮为 92.64%，按测试集选出的最佳一轮为 93.00%。") in zh  # fmt: skip
    assert (f"; trained as the original was, its last epoch gives {he_xavier['mean']:.2%} ± "
            f"{100 * he_xavier['std']:.2f} points over 3 seeds with `init=he_xavier` and "
            f"{pytorch['mean']:.2%} ± {100 * pytorch['std']:.2f} points over 2 seeds with "
            "`init=pytorch`, against the original's last epoch, 92.64%.") in md  # the conclusions  # fmt: skip
    assert (f"；按原报告的方式训练，最后一轮的测试准确率 `init=he_xavier` 为 {he_xavier['mean']:.2%} ± "
            f"{100 * he_xavier['std']:.2f} 个百分点（3 个种子）、`init=pytorch` 为 "
            f"{pytorch['mean']:.2%} ± {100 * pytorch['std']:.2f} 个百分点（2 个种子），"
            "对照原报告最后一轮的 92.64%。") in zh  # fmt: skip
    assert "Left out: reproduction_lr_seed0.json (no other seed trained alike)." in md
    assert "`init=as_marked` 严格按层表实现，其余各层及所有偏置保留 PyTorch 的默认初始化" in zh
    assert "未计入：reproduction_lr_seed0.json (no other seed trained alike)。" in zh


def _only_gpu_groups_recorded_before_all_data(runs: dict) -> None:
    """Only the GPU groups, as a metrics.json written before hold_out_validation has them."""
    path = runs["pytorch"] / "metrics.json"
    metrics = read_json(path)
    groups = metrics["init_seeds"]["groups"]
    metrics["init_seeds"]["groups"] = [{k: v for k, v in g.items() if k != "hold_out_validation"}
                                       for g in groups if "cuda_graphs=True" in g["description"]]  # fmt: skip
    write_json(path, metrics)


def test_gpu_groups_recorded_before_all_data_are_reported_as_held_out(tmp_path, figure_cache):
    built = _build(tmp_path, figure_cache, readme=False, notebooks=False,
                   damage=_only_gpu_groups_recorded_before_all_data)  # fmt: skip
    md, zh = " ".join(built["md"].split()), " ".join(built["zh"].split())
    assert len(tables(built["md"])["init-seeds"]) == 4  # header, two GPU groups, the original
    assert "`make -C experiments gpu` trains the reproduction over seeds with `init=he_xavier` and" in md
    for absent in ("make -C experiments all-data", "Trained as the original was", "trained as the original was",
                   "hold_out_validation=False", "make -C experiments init-seeds", "selected on validation as well"):  # fmt: skip
        assert absent not in md
    for absent in ("make -C experiments all-data", "按原报告的方式训练", "取最后一轮", "make -C experiments init-seeds", "；同样按验证集选择"):
        assert absent not in zh


def _one_group_on_all_data(runs: dict) -> None:
    """The GPU groups and one group trained on all the images, the last (init=pytorch)."""
    path = runs["pytorch"] / "metrics.json"
    metrics = read_json(path)
    groups = metrics["init_seeds"]["groups"]
    metrics["init_seeds"]["groups"] = [g for g in groups if g["hold_out_validation"]] + groups[-1:]
    write_json(path, metrics)


def test_one_group_on_all_data_is_reported_alone(tmp_path, figure_cache):
    built = _build(tmp_path, figure_cache, readme=False, notebooks=False,
                   damage=_one_group_on_all_data)  # fmt: skip
    md, zh = " ".join(built["md"].split()), " ".join(built["zh"].split())
    assert [row[0] for row in tables(built["md"])["init-seeds"][1:]] == [
        "`he_xavier`", "`pytorch`", "`as_marked`", "`pytorch`", "the original"]
    assert "over seeds, with `init=pytorch`. Each row" in md
    assert "各组设置：`init=pytorch`。" in zh
    assert ") with `init=pytorch`. The original's last epoch gave 92.64%" in md
    assert "最后一轮的测试准确率：`init=pytorch` 为 " in zh
    assert "points over 2 seeds with `init=pytorch`, against the original's last epoch" in md
    assert "points over 3 seeds with `init=he_xavier`" not in md
    assert "over seeds, with `init=he_xavier`" not in md


def _no_gpu_groups(runs: dict) -> None:
    """The groups of a project without a GPU: none replayed as CUDA graphs."""
    path = runs["pytorch"] / "metrics.json"
    metrics = read_json(path)
    metrics["init_seeds"]["groups"] = [g for g in metrics["init_seeds"]["groups"]
                                       if "cuda_graphs=True" not in g["description"]]  # fmt: skip
    write_json(path, metrics)


def test_groups_without_a_gpu_are_reported_without_make_gpu(tmp_path, figure_cache):
    built = _build(tmp_path, figure_cache, readme=False, notebooks=False, damage=_no_gpu_groups)
    md, zh = " ".join(built["md"].split()), " ".join(built["zh"].split())
    assert [row[0] for row in tables(built["md"])["init-seeds"][1:]] == [
        "`as_marked`", "`he_xavier`", "`pytorch`", "the original"]
    assert ("keeps the defaults everywhere. `make -C experiments init-seeds` trains the reproduction over seeds "
            "with `init=as_marked`, validation held out as in the notebook. The original also") in md
    assert "所有层都用默认初始化。`make -C experiments init-seeds` 像笔记本一样留出验证集" in zh
    assert "make -C experiments gpu" not in md.split("layer table marks")[1].split("<!-- table: init-seeds")[0]
    assert "CUDA graph" not in zh.split("原报告的层表")[1].split("<!-- table: init-seeds")[0]


def test_groups_over_seeds_are_named_by_initialisation_then_other_changes():
    groups = [{"init": "he_xavier", "description": "hold_out_validation=False"},
              {"init": "pytorch", "description": "init=pytorch, epochs=4, hold_out_validation=False"},
              {"init": "he_xavier", "description": "cuda_graphs=True"},
              {"init": "as_marked", "description": "init=as_marked, lr=0.002"}]
    assert [build_report._init_and_changes(g) for g in groups] == [
        "init=he_xavier", "init=pytorch, epochs=4", "init=he_xavier", "init=as_marked, lr=0.002"]
    assert [build_report._replayed_as_graphs(g) for g in groups] == [False, False, True, False]


def test_the_reproductions_gpu_times_are_compared(full):
    """The slowest and fastest full-length reproduction among the GPU runs (the improved run, and
    any shorter one, left out), in both languages."""
    md, zh = " ".join(full["md"].split()), " ".join(full["zh"].split())
    assert ("Timed alone, the 20-epoch reproduction took from 40.2 s (reproduction: reproduction) "
            "down to 6.7 s (reproduction_graphs: reproduction with cuda_graphs=True), 6.0 times "
            "faster.") in md  # fmt: skip
    assert ("单独计时，20 轮的复现训练最慢用时 40.2 秒（reproduction：reproduction），最快 6.7 秒"
            "（reproduction_graphs：reproduction with cuda_graphs=True），快 6.0 倍。") in zh


def test_the_prose_numbers_come_from_the_metrics(full):
    myself, torch = full["metrics"]["cnn-by-myself"], full["metrics"]["cnn-by-pytorch"]
    md = full["md"]
    conclusions = md.split("## 10. Conclusions", 1)[1].split("## 11.", 1)[0]
    assert f"{100 * myself['test_accuracy']:.2f}%" in conclusions
    assert f"{100 * torch['test_accuracy']:.2f}%" in conclusions
    assert f"{100 * (myself['test_accuracy'] - original.RESULTS['cnn-by-myself']):+.2f} points" in conclusions
    assert "As in the original, Shirt predicted as" in conclusions  # the fake is built that way
    speedup = torch["images_per_second"] / myself["images_per_second"]
    assert f"{speedup:.1f} times" in conclusions
    counts = myself["class_counts"]
    assert f"In all: {sum(counts['train']):,} training, {sum(counts['val']):,} validation" in md
    assert "+augment" in conclusions  # the best ablation row by validation accuracy
    rows = {r["name"]: r for r in torch["ablation"]["rows"]}
    gain = rows["+augment"]["val_accuracy"] - rows["baseline"]["val_accuracy"]
    assert f"{100 * gain:+.2f} validation points over\n  *baseline*" in conclusions
    ens = torch["ensemble"]
    best_member = max(ens["member_test_accuracies"].values())
    assert f"{100 * (ens['test_accuracy'] - best_member):+.2f} points." in conclusions


def speed_section(markdown: str, lang: str) -> str:
    """The speed section of report.md ('md') or report.zh.md ('zh'), after the comparison."""
    heading = "\n### Training speed\n" if lang == "md" else "\n### 训练速度\n"
    return markdown.split(heading, 1)[1].split("\n### ", 1)[0]


def check_speed_table(markdown: str, bench: dict) -> None:
    """The speed table shows each batch size of the benchmark, in order, with its images/s and
    ratio exactly as the report formats them."""
    rows = tables(markdown)["speed"][1:]
    results = bench["results"]
    assert [int(r[0]) for r in rows] == sorted(int(b) for b in results)
    for row in rows:
        r = results[row[0]]
        assert row[1] == f"{r['numpy_images_per_s']:,.1f}" and same(
            row[1], r["numpy_images_per_s"], tol=0.051
        )
        assert row[2] == f"{r['torch_images_per_s']:,.1f}" and same(
            row[2], r["torch_images_per_s"], tol=0.051
        )
        assert row[3] == f"{r['ratio']:.3f}" and same(row[3], r["ratio"], tol=0.0005)


def original_speed_numbers(run: dict) -> tuple[str, str]:
    """Our reproduction's seconds per step and its speed-up over the original, as shown."""
    per_step = run["train_seconds"] / run["config"]["steps"]
    speedup = original.NUMPY_SPEED["seconds_per_step"] / per_step
    return f"{per_step:.4f}", f"{max(speedup, 1 / speedup):.1f}"


@pytest.mark.parametrize("lang", ["md", "zh"])
def test_speed_section_equals_the_benchmark(full, lang):
    markdown, bench = full[lang], full["bench"]
    section = speed_section(markdown, lang)
    assert "<!-- table: speed -->" in section  # the table is in this section, after the comparison
    assert markdown.index("<!-- table: speed -->") > markdown.index(
        "<!-- table: comparison/all -->"
    )
    check_speed_table(markdown, bench)
    header = tables(markdown)["speed"][0]
    assert header == (["Batch size", "NumPy images/s", "PyTorch images/s", "Ratio NumPy/PyTorch"]
                      if lang == "md" else ["批大小", "NumPy 图像/秒", "PyTorch 图像/秒",
                                            "比值 NumPy/PyTorch"])  # fmt: skip
    # the settings and where it was measured, from the file
    prov = bench["provenance"]
    flat = " ".join(section.split())
    commit, b = prov["git_commit"][:12], bench
    expected, absent = {
        "md": ([f"alternating over {b['rounds']} rounds", f"Rounds: {b['rounds']}; timed steps per "
                f"measurement: {b['steps']}, after {b['warmup']} untimed warm-up steps; threads "
                f"(NumPy's BLAS and PyTorch alike): {b['threads']}.",
                f"Measured on {prov['cpu']} ({prov['cpu_cores']} cores)",
                f"at commit `{commit}` on {prov['date']}.", "median"], "uncommitted"),
        "zh": ([f"交替进行 {b['rounds']} 轮", f"轮数：{b['rounds']}；每次测量的计时步数：{b['steps']}，"
                f"之前另有 {b['warmup']} 步不计时的预热；线程数（NumPy 的 BLAS 与 PyTorch 相同）："
                f"{b['threads']}。", f"测量环境：{prov['cpu']}（{prov['cpu_cores']} 核）",
                f"代码版本 `{commit}`，测量时间 {prov['date']}。", "中位数"], "未提交"),
    }[lang]  # fmt: skip
    assert all(text in flat for text in expected) and absent not in flat
    for key in ("platform", "python", "numpy", "torch"):
        assert prov[key] in flat
    assert str(full["bench_path"]) in flat
    # the HTML is rendered from this Markdown: the table and its numbers are there
    html = full["html" if lang == "md" else "zh_html"]
    assert "<!-- table: speed -->" in html
    assert ("Training speed</h3>" if lang == "md" else "训练速度</h3>") in html
    for r in bench["results"].values():
        assert f"{r['numpy_images_per_s']:,.1f}" in html and f"{r['ratio']:.3f}" in html


@pytest.mark.parametrize("lang", ["md", "zh"])
def test_speed_against_the_original_code(full, lang):
    """Our NumPy reproduction's seconds per step (its train_seconds over its configured steps)
    beside the original's 0.6 s per step: the constants, our numbers and the factor."""
    section = " ".join(speed_section(full[lang], lang).split())
    run = full["metrics"]["cnn-by-myself"]["reproduction"]
    per_step, factor = original_speed_numbers(run)
    speed = original.NUMPY_SPEED
    assert speed["seconds_per_step"] == 0.6
    assert speed["train_minutes"] == 50
    if lang == "md":
        assert (
            f"took about {speed['seconds_per_step']} s per step at batch size "
            f"{speed['batch_size']} (a pure-Python max-pool loop, float64): about "
            f"{speed['train_minutes']} minutes for {speed['steps']:,} steps"
        ) in section
        assert (
            f"Our reproduction run (batch size {run['config']['batch_size']}, "
            f"{run['config']['steps']:,} steps) trained in "
            f"{build_report.duration(run['train_seconds'])} on {run['hardware']}: "
            f"{per_step} s per step ({run['images_per_second']:,.1f} images/s)"
        ) in section
        # the fake reproduction is slower than the original's 0.6 s per step
        assert f"**{factor} times** slower per step" in section
        assert "different machines" in section
    else:
        assert (f"在批大小为 {speed['batch_size']} 时每步约需 {speed['seconds_per_step']} 秒"
                f"（最大池化用纯 Python 循环实现，float64），{speed['steps']:,} 步约需 "
                f"{speed['train_minutes']} 分钟") in section  # fmt: skip
        assert (f"我们的复现运行（批大小 {run['config']['batch_size']}，{run['config']['steps']:,} "
                f"步）在 {run['hardware']} 上训练用时 {build_report.duration(run['train_seconds'])}："
                f"每步 {per_step} 秒（每秒 {run['images_per_second']:,.1f} 张图像）") in section  # fmt: skip
        assert f"每步用时是原代码的 **{factor} 倍**" in section
        assert "不同机器" in section


def _old_bench_and_a_fast_reproduction(runs: dict) -> None:
    """The NumPy reproduction trained 200 steps in 2.5 s: faster than the original per step."""
    path = runs["myself"] / "metrics.json"
    metrics = read_json(path)
    metrics["reproduction"]["train_seconds"] = 2.5
    write_json(path, metrics)
    runs["metrics"]["cnn-by-myself"] = metrics


def test_speed_from_an_old_benchmark_file(tmp_path, figure_cache):
    """The first recorded bench_lenet.json (no rounds, steps, warmup, threads): the table all
    the same, the settings shown as '–', no note."""
    built = _build(tmp_path, figure_cache, bench="old", readme=False, notebooks=False,
                   damage=_old_bench_and_a_fast_reproduction)  # fmt: skip
    assert "rounds" not in built["bench"]
    assert not [n for n in built["result"]["notes"] if "speed benchmark" in n["en"]]
    run = built["runs"]["metrics"]["cnn-by-myself"]["reproduction"]
    per_step, factor = original_speed_numbers(run)
    assert float(factor) > 1
    for lang in ("md", "zh"):
        check_speed_table(built[lang], built["bench"])
        section = " ".join(speed_section(built[lang], lang).split())
        assert "Not run" not in section and "未运行" not in section
        if lang == "md":
            assert "alternating over several rounds" in section
            assert ("Rounds: –; timed steps per measurement: –, after – untimed warm-up steps; "
                    "threads (NumPy's BLAS and PyTorch alike): –.") in section  # fmt: skip
            assert "(with uncommitted changes)" in section  # the old file's git_dirty is true
            assert f"{per_step} s per step" in section
            assert f"**{factor} times** faster per step" in section
        else:
            assert "两者交替进行若干轮" in section
            assert ("轮数：–；每次测量的计时步数：–，之前另有 – 步不计时的预热；"
                    "线程数（NumPy 的 BLAS 与 PyTorch 相同）：–。") in section  # fmt: skip
            assert "（含未提交的修改）" in section
            assert f"每步 {per_step} 秒" in section
            assert f"每步的速度是原代码的 **{factor} 倍**" in section
    assert "<!-- table: speed -->" in built["html"] and "<!-- table: speed -->" in built["zh_html"]


def test_the_epoch_benchmark_is_reported(full):
    """bench_epoch.json beside bench_lenet.json: ours against the plain loop, in both languages."""
    md, zh = (" ".join(speed_section(full[lang], lang).split()) for lang in ("md", "zh"))
    assert ("ours took 37.8 s and the plain loop 58.0 s (medians), ours **0.67** times the plain "
            "loop's time (median of the per-round ratios), with 2 threads on Bench CPU @ 3.1GHz") in md
    assert "430 steps" in md and "alternating over 5 rounds" in md
    assert "我们的循环用时 37.8 秒，朴素循环 58.0 秒（中位数），我们的用时是朴素循环的 **0.67** 倍" in zh
    assert EPOCH_BENCH["results"]["ratio"] == 0.6704  # the figure shown, rounded


@pytest.mark.parametrize("content", [None, "{ not json", '{"results": {"ours": {}}}'])
def test_a_missing_or_unreadable_epoch_benchmark_is_a_note(tmp_path, figure_cache, content):
    built = _build(tmp_path, figure_cache, readme=False, notebooks=False, epoch_bench=content)
    path = str(tmp_path / "bench_epoch.json")
    notes = [n for n in built["result"]["notes"] if path in n["en"]]
    assert len(notes) == 1 and path in notes[0]["zh"]
    assert "benchmarks/bench_epoch.py --record benchmarks/bench_epoch.json" in notes[0]["zh"]
    assert notes[0]["en"].startswith("missing input" if content is None else "epoch benchmark")
    assert "One epoch of the PyTorch reproduction" not in built["md"]


@pytest.mark.parametrize("bench", [None, "corrupt"])
def test_missing_or_unreadable_benchmark_is_a_note(tmp_path, figure_cache, bench):
    built = _build(tmp_path, figure_cache, bench=bench, readme=False, notebooks=False)
    path = str(built["bench_path"])
    notes = [n for n in built["result"]["notes"] if path in n["en"]]
    assert len(notes) == 1
    en, zh = notes[0]["en"], notes[0]["zh"]
    assert path in zh and "make bench" in en and "make bench" in zh
    assert "benchmarks/bench_lenet.py --record benchmarks/bench_lenet.json" in en
    assert "benchmarks/bench_lenet.py --record benchmarks/bench_lenet.json" in zh
    if bench is None:
        assert en.startswith("missing input: no speed benchmark results at")
        assert zh.startswith(f"缺少输入：{path} 处没有速度基准测试结果")
    else:
        assert "could not be read" in en and zh.startswith(f"无法读取 {path} 处的速度基准测试结果")
    assert "“训练速度”一节标注为“未运行”" in zh and "missing input" not in zh
    # the note: English on stderr and in report.md, Chinese in report.zh.md
    assert en in built["messages"] and zh not in built["messages"]
    assert en in note_list(built["md"]) and zh in note_list(built["zh"])
    assert en not in built["zh"] and zh not in built["md"]
    # the section says not run, in both languages; the rest of the report is built
    md, zh_md = speed_section(built["md"], "md"), speed_section(built["zh"], "zh")
    assert (
        f"> **Not run:** the speed benchmark: no readable results at `{path}` (run `make bench`)"
        in md
    )
    assert (
        f"> **未运行：** 速度基准测试：`{path}` 处没有可读取的结果（请运行 `make bench`）" in zh_md
    )
    for text in (built["md"], built["zh"]):
        assert "speed" not in tables(text) and "comparison/all" in tables(text)
    assert "Training speed</h3>" in built["html"] and "训练速度</h3>" in built["zh_html"]
    # the comparison with the original code needs only the metrics: still there
    run = built["metrics"]["cnn-by-myself"]["reproduction"]
    assert f"{original_speed_numbers(run)[0]} s per step" in md


def test_readme_block_rewritten_and_nothing_else(full):
    text = full["readme"].read_text(encoding="utf-8")
    before, rest = README_TEXT.split("<!-- results:start -->")
    after = rest.split("<!-- results:end -->")[1]
    assert text.startswith(before + "<!-- results:start -->\n")
    assert text.endswith("<!-- results:end -->" + after)
    block = text.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    assert "old" not in block
    for model in MODELS:
        assert f"**{100 * full['metrics'][model]['test_accuracy']:.2f}%**" in block
    assert "out/report.md" in block
    # each model: its main run, then its reproduction (the original's settings), both beside the
    # original report's number; then the ensemble
    rows = readme_rows(full["readme"])
    expected = []
    for model in MODELS:
        metrics = full["metrics"][model]
        label = build_report._run_label(metrics["name"]).en
        expected.append((f"{model}: {metrics['implementation']}, {label}", model, metrics))
        expected.append((f"{model}: {metrics['implementation']}, original settings (reproduction)",
                         model, metrics["reproduction"]))  # fmt: skip
    assert [r[0] for r in rows[: len(expected)]] == [label for label, *_ in expected]
    for row, (_, model, run) in zip(rows, expected, strict=False):
        assert same(row[1], run["params"])
        assert same_pct(row[2], run["test_accuracy"])
        assert same_pct(row[3], original.RESULTS[model])
        assert row[5] == run["hardware"]
    assert rows[0][2].startswith("**") and not rows[1][2].startswith("**")  # main run in bold
    assert rows[1][0] == "cnn-by-myself: NumPy (from scratch), original settings (reproduction)"
    ens = full["metrics"]["cnn-by-pytorch"]["ensemble"]
    assert rows[len(expected)][0].startswith("Ensemble")
    assert same_pct(rows[len(expected)][2], ens["test_accuracy"])


def test_missing_model_is_named_and_marked_not_run(only_myself):
    messages = only_myself["messages"]
    assert "cnn-by-pytorch" in messages and "metrics.json" in messages
    assert str(only_myself["runs"]["pytorch"] / "metrics.json") in messages
    assert "cnn-by-pytorch.ipynb" in messages  # the executed notebooks are missing too
    md, zh = only_myself["md"], only_myself["zh"]
    pytorch_part = md.split("### cnn-by-pytorch", 1)[1].split("##", 1)[0]
    assert "**Not run:** cnn-by-pytorch: no metrics.json" in pytorch_part
    for section in ("### Ablation", "### Ensemble", "### ResNet"):
        assert "**Not run:**" in md.split(section, 1)[1].split("###", 1)[0], section
    assert "**未运行：** cnn-by-pytorch" in zh
    assert zh.count("**未运行：**") >= 4
    assert "- **cnn-by-pytorch**: not run." in md
    assert "not exported" in md
    # the notes name what is missing, in English in report.md and in Chinese in report.zh.md
    notes = only_myself["result"]["notes"]
    assert all(set(n) == {"en", "zh"} for n in notes)
    path = str(only_myself["runs"]["pytorch"] / "metrics.json")
    missing = [n for n in notes if path in n["en"]]
    assert len(missing) == 1 and path in missing[0]["zh"] and "cnn-by-pytorch" in missing[0]["zh"]
    assert note_list(md) == [n["en"] for n in notes]
    assert note_list(zh) == [n["zh"] for n in notes]
    # the README: the NumPy model's two runs, the PyTorch model not run
    rows = readme_rows(only_myself["readme"])
    assert [r[0] for r in rows] == ["cnn-by-myself: NumPy (from scratch), tuned",
                                    "cnn-by-myself: NumPy (from scratch), original settings "
                                    "(reproduction)", "cnn-by-pytorch"]  # fmt: skip
    assert rows[2][2] == "not run"
    # the NumPy half is complete, and the table of the missing model has no row
    t = tables(md)
    assert [r[0] for r in t["comparison/all"][1:]] == ["cnn-by-myself", "cnn-by-myself"]
    assert t["original"][2][3] == "–"
    assert not (only_myself["out"] / "notebooks").exists()


def test_chinese_report_lists_the_notes_in_chinese(only_myself):
    zh, md = only_myself["zh"], only_myself["md"]
    path = only_myself["runs"]["pytorch"] / "metrics.json"
    notebook = only_myself["runs"]["notebooks"] / "cnn-by-pytorch.ipynb"
    expected = (
        f"缺少输入：cnn-by-pytorch：{path} 处没有 metrics.json（请运行 cnn-by-pytorch/demo.ipynb，"
        "例如 `make run`）；相关章节标注为“未运行”",
        f"缺少输入：找不到已执行的 notebook {notebook}，未导出",
    )
    for note in expected:
        assert f"- {note}\n" in zh
        assert note not in md
    # no English sentence in the Chinese list; the English report keeps its own
    assert "missing input" not in zh and "no metrics.json at" not in zh and "not found" not in zh
    assert f"missing input: cnn-by-pytorch: no metrics.json at {path}" in md
    # the notes are printed in English only
    assert "缺少输入" not in only_myself["messages"]


def _break_inputs(runs: dict) -> None:
    """Everything but a metrics.json or a notebook missing: a figure, the first-images figure, a
    log, a reproduction, the ablation, the GPU runs; a layer count that does not add up; a damaged notebook."""
    myself, torch = runs["myself"], runs["pytorch"]
    (myself / "figures" / "tuned_confusion.png").unlink()
    (myself / "figures" / "first_images.png").unlink()
    (torch / "logs" / "improved_train.log").unlink()
    metrics = read_json(myself / "metrics.json")
    metrics["layers"][0] = {**metrics["layers"][0], "params": 157}
    write_json(myself / "metrics.json", metrics)
    metrics = read_json(torch / "metrics.json")
    write_json(torch / "metrics.json", {**metrics, "reproduction": None, "ablation": None,
                                        "gpu_runs": None, "seeds": None,
                                        "init_seeds": None})  # fmt: skip
    (runs["notebooks"] / "cnn-by-pytorch.ipynb").write_text("{ not json", encoding="utf-8")


def test_every_note_is_in_both_languages(tmp_path, figure_cache):
    built = _build(tmp_path, figure_cache, damage=_break_inputs)
    notes = built["result"]["notes"]
    myself, torch = built["runs"]["myself"], built["runs"]["pytorch"]
    expected_zh = [
        f"缺少输入：cnn-by-myself（tuned）：在 {myself / 'figures/tuned_confusion.png'} 找不到图像 "
        "'confusion'",
        "cnn-by-myself（tuned）：各层参数之和为 61751，而 metrics.json 记录的参数量为 61750",
        f"缺少输入：cnn-by-myself：找不到图像 {myself / 'figures/first_images.png'}",
        f"缺少输入：cnn-by-pytorch（improved）：在 {torch / 'logs/improved_train.log'} 找不到日志文件",
        "缺少输入：cnn-by-pytorch：metrics.json 中没有 'reproduction' 运行（原报告设置的复现）；"
        "标注为“未运行”",
        "未运行：消融实验（make -C experiments ablation）：cnn-by-pytorch/metrics.json 中 'ablation' 为 null",
        "未运行：ResNet（需要 GPU；make -C experiments resnet）：cnn-by-pytorch/metrics.json 中 'resnet' 为 null",
        "未运行：GPU 上的运行（make -C experiments gpu）：cnn-by-pytorch/metrics.json 中 'gpu_runs' 为 null",
        "未运行：其他随机种子的复现（make -C experiments seeds）：cnn-by-pytorch/metrics.json 中 'seeds' 为 null",
        "未运行：各初始化方式在多个随机种子下的复现（make -C experiments gpu、init-seeds、all-data）："
        "cnn-by-pytorch/metrics.json 中 'init_seeds' 为 null",
    ]  # fmt: skip
    zh_notes = [n["zh"] for n in notes]
    for note in expected_zh:
        assert note in zh_notes
    exported = [n for n in notes if n["zh"].startswith("已执行的 notebook ")]
    assert len(exported) == 1 and "无法导出：" in exported[0]["zh"]
    assert len(notes) == len(expected_zh) + 1
    # each note: English in report.md and on stderr, Chinese in report.zh.md, never crossed
    assert note_list(built["md"]) == [n["en"] for n in notes]
    assert note_list(built["zh"]) == zh_notes
    for note in notes:
        assert note["en"] in built["messages"] and note["zh"] not in built["messages"]
        assert note["en"] != note["zh"] and re.search(r"[\u4e00-\u9fff]", note["zh"])
    assert not re.search(r"missing input|not found|not run:|could not", "\n".join(zh_notes))
    # the README: no reproduction row for the model that has none
    assert [r[0] for r in readme_rows(built["readme"])] == [
        "cnn-by-myself: NumPy (from scratch), tuned",
        "cnn-by-myself: NumPy (from scratch), original settings (reproduction)",
        "cnn-by-pytorch: PyTorch, improved",
        "Ensemble (3 models)",
    ]


@pytest.mark.parametrize("from_log", [False, True])
def test_only_pytorch_with_a_resnet(tmp_path, figure_cache, from_log):
    """cnn-by-myself missing (its data section too), the ResNet present with its hardware."""
    built = _build(tmp_path, figure_cache, myself=False, resnet=True, resnet_from_log=from_log,
                   notebooks=False)  # fmt: skip
    assert str(built["runs"]["myself"] / "metrics.json") in built["messages"]
    md, zh = built["md"], built["zh"]
    resnet = built["metrics"]["cnn-by-pytorch"]["resnet"]
    section = md.split("### ResNet", 1)[1].split("## 9.", 1)[0]
    assert resnet["hardware"] in section
    assert f"{100 * resnet['test_accuracy']:.2f}%" in section
    assert ("per-epoch log" in section) == ("逐轮日志" in zh) == from_log  # said when it is so
    t = tables(md)
    rows = t["comparison/all"][1:]
    assert [r[0] for r in rows] == ["cnn-by-pytorch"] * 3
    assert num(rows[-1][4]) == pct(resnet["test_accuracy"]) and rows[-1][8] == resnet["hardware"]
    assert [int(r[0]) for r in t["epochs/resnet"][1:]] == [e["epoch"] for e in resnet["epochs"]]
    assert "**Not run:** cnn-by-myself: no metrics.json" in md
    assert "**Not run:** the data source" in md.split("## 2.", 1)[1].split("## 3.", 1)[0]
    assert all(r[3] == "–" for r in t["classes"][1:])  # no class counts without cnn-by-myself
    assert "**未运行：** cnn-by-myself：" in zh and "**ResNet**（NVIDIA Fake GPU 80GB）" in zh


def test_neither_model_still_builds(tmp_path, figure_cache):
    built = _build(tmp_path, figure_cache, myself=False, pytorch=False, notebooks=False)
    for model in MODELS:
        assert f"{model}: no metrics.json at" in built["messages"]
    assert "**Not run:** neither model has a metrics.json" in built["md"]
    assert "**Not run:** no model has run yet" in built["md"]
    assert "comparison/all" not in tables(built["md"])
    assert built["readme"].read_text(encoding="utf-8") == README_TEXT  # nothing to report yet


def test_quick_build_from_the_command_line_says_quick(tmp_path, figure_cache):
    runs = make_fake_runs(tmp_path / "runs", figure_cache=figure_cache, quick=True)
    bench = make_fake_bench(tmp_path / "bench.json")
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "report/build_report.py"), "--quick", "--no-pdf",
         "--myself", str(runs["myself"]), "--pytorch", str(runs["pytorch"]),
         "--out", str(out), "--notebooks", str(tmp_path / "no-notebooks"),
         "--bench", str(tmp_path / "bench.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "runs/quick" not in proc.stdout  # the folders given on the command line were used
    for name in ("report.md", "report.zh.md"):
        assert "QUICK" in (out / name).read_text(encoding="utf-8").splitlines()[0]
    assert "<title>QUICK" in (out / "report.html").read_text(encoding="utf-8")
    assert "README" not in proc.stdout  # a quick build never touches the README
    assert "cnn-by-myself.ipynb not found" in proc.stderr
    check_speed_table((out / "report.md").read_text(encoding="utf-8"), bench)  # --bench was read


def test_missing_extras_then_a_rebuild_from_quick_metrics(tmp_path, figure_cache):
    """No extras: marked not run. Rebuilt after a quick run replaced the metrics: QUICK even
    without the flag, the README untouched, the earlier build's unused figures and pages gone."""
    built = _build(tmp_path, figure_cache, extras=False)
    assert "QUICK" not in built["md"].splitlines()[0]
    # first, without ablation, ensemble and ResNet: named, and their sections marked not run
    for what in ("ablation study", "ensemble", "ResNet"):
        assert f"not run: {what}" in built["messages"]
    for section in ("### Ablation", "### Ensemble", "### ResNet"):
        assert "**Not run:**" in built["md"].split(section, 1)[1].split("###", 1)[0], section
    assert "ablation" not in tables(built["md"]) and "ensemble" not in tables(built["md"])
    assert "**未运行：** 消融实验" in built["zh"] and "**未运行：** 模型集成" in built["zh"]
    # then rebuilt from quick metrics, with a stale figure and the notebooks gone
    stale = built["out"] / "figures" / "old-figure.png"
    stale.write_bytes(b"old")
    shutil.rmtree(built["runs"]["notebooks"])
    for key in ("myself", "pytorch"):
        path = built["runs"][key] / "metrics.json"
        write_json(path, {**read_json(path), "quick": True})
    built["readme"].write_text(README_TEXT, encoding="utf-8")
    result = build_report.build(
        built["runs"]["myself"],
        built["runs"]["pytorch"],
        built["out"],
        built["runs"]["notebooks"],
        readme=built["readme"],
        pdf=False,
    )
    assert result["quick"] and not result["readme_updated"]
    assert (built["out"] / "report.md").read_text(encoding="utf-8").startswith("# QUICK run:")
    assert built["readme"].read_text(encoding="utf-8") == README_TEXT
    assert not stale.exists()
    assert not list((built["out"] / "notebooks").glob("*.html"))
    assert (built["out"] / "figures" / "class-balance.png").is_file()


def test_corrupt_metrics_is_an_error_naming_the_file(tmp_path, figure_cache):
    runs = make_fake_runs(tmp_path / "runs", figure_cache=figure_cache, notebooks=False)
    (runs["pytorch"] / "metrics.json").write_text("{ not json", encoding="utf-8")
    code = build_report.main(["--myself", str(runs["myself"]), "--pytorch", str(runs["pytorch"]),
                              "--out", str(tmp_path / "out"), "--no-pdf"])  # fmt: skip
    assert code == 1


@NEEDS_CHROMIUM
def test_html_loads_in_chromium_without_broken_images(built, tmp_path):
    # A copy of the page with a probe that counts images the browser could not decode.
    probe = (
        "<script>window.addEventListener('load', () => { const imgs = [...document.images];"
        " const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;"
        " const d = document.createElement('div'); d.id = 'probe';"
        " d.textContent = `images=${imgs.length} broken=${broken}`;"
        " document.body.appendChild(d); });</script></body>"
    )
    for name in ("report.html", "report.zh.html"):
        page = tmp_path / name
        if (built["out"] / "notebooks").is_dir():
            shutil.copytree(built["out"] / "notebooks", tmp_path / "notebooks", dirs_exist_ok=True)
        page.write_text((built["out"] / name).read_text(encoding="utf-8").replace("</body>", probe),
                        encoding="utf-8")  # fmt: skip
        proc = build_report.chromium(["--virtual-time-budget=15000", "--dump-dom", page.as_uri()],
                                     timeout=120)  # fmt: skip
        match = re.search(r"images=(\d+) broken=(\d+)", proc.stdout)
        assert match, f"the page did not load: {proc.stderr[-800:]}"
        assert int(match[1]) >= 10 and int(match[2]) == 0, match[0]
    shot = tmp_path / "report.png"
    build_report.chromium([f"--screenshot={shot}", "--window-size=1280,4000",
                           (built["out"] / "report.html").as_uri()], timeout=120)  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- One section tree for both languages; resumed runs; the optional experiments -------------------


def section_tree(markdown: str) -> list[tuple[int, int | None]]:
    """The headings as (level, number): '## 7. Comparison' and '## 七、对比' are both (2, 7)."""
    digits = {c: i for i, c in enumerate("一二三四五六七八九十", 1)}
    tree = []
    for hashes, title in re.findall(r"^(#{1,6}) (.*)$", markdown, re.M):
        m = re.match(r"(\d+)\. |([一二三四五六七八九十]+)、", title)
        number = None
        if m and m[1]:
            number = int(m[1])
        elif m:  # 一 .. 十, 十一 .. 十九
            zh = m[2]
            number = digits[zh] if len(zh) == 1 else 10 + digits[zh[1]]
        tree.append((len(hashes), number))
    return tree


@pytest.mark.parametrize("which", ["full", "only_myself"])
def test_english_and_chinese_have_the_same_section_tree(request, which):
    """Same headings (levels, order, numbers), same tables and figures in the same order."""
    built = request.getfixturevalue(which)
    md, zh = built["md"], built["zh"]
    assert section_tree(md) == section_tree(zh)
    numbers = [n for level, n in section_tree(md) if level == 2 and n is not None]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 10
    assert list(tables(md)) == list(tables(zh))
    figures = [re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text) for text in (md, zh)]
    assert figures[0] == figures[1]


def _resumed(runs: dict) -> None:
    """The NumPy reproduction resumed from step 120, the PyTorch improved run from epoch 2, and
    the PyTorch notebook timed at 30.1 s (a notebook that resumed its runs)."""
    for model, run_key, key, at, seconds in (("myself", "reproduction", "resumed_from_step", 120, 4321.5),
                                             ("pytorch", None, "resumed_from_epoch", 2, 7654.3)):  # fmt: skip
        path = runs[model] / "metrics.json"
        metrics = read_json(path)
        run = metrics[run_key] if run_key else metrics
        run.update({key: at, "train_seconds": seconds})
        if model == "pytorch":
            metrics["provenance"] = {**metrics["provenance"], "wall_seconds": 30.1}
        write_json(path, metrics)


def test_a_resumed_run_gives_no_training_time(tmp_path, figure_cache):
    built = _build(tmp_path, figure_cache, notebooks=False, damage=_resumed)
    readme = built["readme"].read_text(encoding="utf-8")
    for text in (built["md"], built["zh"], built["html"], readme):
        for shown in ("4,321.5", "72.0 min", "7,654.3", "2.13 h", "30.1"):
            assert shown not in text
    md, zh = (" ".join(built[k].split()) for k in ("md", "zh"))
    assert "This run was resumed from step 120: the time its record holds covers only what" in md
    assert "no training time for it (the per-epoch times are in the table)." in md
    assert "该运行从第 120 步的检查点续跑" in zh and "该运行从第 2 轮的检查点续跑" in zh
    for text in (built["md"], built["zh"]):
        resumed = "resumed" if text is built["md"] else "续跑"
        times = [r[6] for r in tables(text)["comparison/all"][1:]]
        assert times == ["322.2", resumed, resumed, "75.5"]  # the other runs keep theirs
        stages = tables(text)["stages"][1:]
        assert [r[1:] for r in stages if r[0].startswith("cnn-by-pytorch: ") and "notebook" in r[0]] \
            == [["–", "–"]]  # fmt: skip
    assert "**Not run:** the comparison with the original code's speed" in built["md"]
    assert [r[4] for r in readme_rows(built["readme"])[:4]] == ["5.4 min", "resumed", "resumed", "75.5 s"]


def test_the_layer_profile_is_reported(full):
    """bench_layers.json (bench_lenet.py --profile) beside the speed benchmark: its table equals
    the record, its figure is drawn by plots.plot_layer_profile, and the sentence names the layers
    where NumPy is slower and faster, with the host and thread count, in both languages."""
    layers = LAYER_BENCH["results"]["layers"]
    total = {x: {i: sum(row[i].values()) for i in ("numpy", "torch")} for x, row in layers.items()}
    ratio = {x: v["numpy"] / v["torch"] for x, v in total.items()}
    for lang in ("md", "zh"):
        rows = tables(full[lang])["layer-profile"][1:]
        assert [r[0] for r in rows[:-1]] == list(layers)
        for row, (name, layer) in zip(rows, layers.items(), strict=False):
            times = [layer[i][p] for i in ("numpy", "torch") for p in ("forward", "backward")]
            assert [float(c) for c in row[1:5]] == times and row[5] == f"{ratio[name]:.2f}"
        assert "figures/layer-profile.png" in full[lang] and (full["out"] / "figures/layer-profile.png").is_file()
    md, zh = (" ".join(full[k].split()) for k in ("md", "zh"))
    slower = sorted((x for x in ratio if ratio[x] > 1), key=ratio.get, reverse=True)
    assert ("NumPy is slower than PyTorch in " + ", ".join(
        f"`{x}` ({ratio[x]:.2f} times PyTorch's time)" for x in slower[:-1])
        + f" and `{slower[-1]}` ({ratio[slower[-1]]:.2f} times PyTorch's time);") in md  # fmt: skip
    assert "it is faster in `fc1` (0.50)." in md and "NumPy 更快的层：`fc1`（0.50）。" in zh
    assert f"`{slower[0]}`（PyTorch 用时的 {ratio[slower[0]]:.2f} 倍）" in zh
    assert "on Bench CPU @ 3.1GHz, 2 cores, 3 BLAS/torch threads, at commit `fedcba987654`" in md
    assert "测量环境：Bench CPU @ 3.1GHz，2 核，BLAS/torch 线程数 3，提交 `fedcba987654`" in zh
    numpy_ms = sum(v["numpy"] for v in total.values())
    assert f"A whole step of the layers takes {numpy_ms:.2f} ms in NumPy" in md


def test_the_benchmarks_before_the_speed_up_are_beside_them(full):
    """bench_lenet_before.json and bench_layers_before.json: before/after tables of images/s and
    ratio per batch size, and of each layer's time, each with its commit and CPU."""
    for lang in ("md", "zh"):
        t = tables(full[lang])
        rows = t["speed/before-after"][1:]
        assert [int(r[0]) for r in rows] == sorted(int(b) for b in BENCH_RESULTS)
        for row in rows:
            old, new = BENCH_BEFORE["results"][row[0]], BENCH_RESULTS[row[0]]
            assert same(row[1], old["numpy_images_per_s"], tol=0.051) and same(row[2], new["numpy_images_per_s"], tol=0.051)
            assert same(row[3], old["torch_images_per_s"], tol=0.051) and same(row[4], new["torch_images_per_s"], tol=0.051)
            assert row[5:] == [f"{old['ratio']:.3f}", f"{new['ratio']:.3f}"]
        rows = t["layer-profile/before-after"][1:]
        for row, (name, layer) in zip(rows, LAYER_BENCH["results"]["layers"].items(), strict=False):
            old = LAYER_BENCH_BEFORE["results"]["layers"][name]
            assert row[0] == name and [float(c) for c in row[1:]] == [
                sum(r[i].values()) for i in ("numpy", "torch") for r in (old, layer)]
        assert rows[-1][0] in ("**Total**", "**合计**")
        assert full[lang].count(f"`{BEFORE_COMMIT[:12]}`") == 2


def _robustness_expected():
    """From the fixture's rows directly: per model, each corruption's mean over its severities,
    the mean over every corrupted set, and each corruption's accuracies by severity."""
    per, flat = {}, {}
    for row in ROBUSTNESS["rows"]:
        per.setdefault(row["model"], {}).setdefault(row["corruption"], []).append(row["accuracy"])
        flat.setdefault(row["model"], []).append(row["accuracy"])
    by_severity = per
    per = {m: {c: statistics.mean(v) for c, v in d.items()} for m, d in per.items()}
    return per, {m: statistics.mean(v) for m, v in flat.items()}, by_severity


def test_robustness_is_reported(full):
    """robustness.json (experiments/robustness/run.py's schema, read through
    corruptions.robustness_table): the table per corruption, the figure, and what augmentation
    bought computed from the record, with provenance and time, in both languages."""
    per, mean, by_severity = _robustness_expected()
    keys = list(ROBUSTNESS["models"])
    for lang in ("md", "zh"):
        t = tables(full[lang])["robustness"]
        assert t[0][1:] == [ROBUSTNESS["models"][k]["label"] for k in keys]
        assert all(same_pct(c, ROBUSTNESS["models"][k]["clean_accuracy"]) for c, k in zip(t[1][1:], keys, strict=True))
        for row, corruption in zip(t[2:-1], per[keys[0]], strict=True):
            assert row[0].startswith(f"`{corruption}` (")
            for cell, k in zip(row[1:], keys, strict=True):  # one value per severity, in order
                assert [float(v) for v in cell.split("\u00a0/\u00a0")] == [
                    round(100 * x, 1) for x in by_severity[k][corruption]]
        assert all(same(c.strip("*"), mean[k], 100, 0.006) for c, k in zip(t[-1][1:], keys, strict=True))
        assert "figures/robustness.png" in full[lang] and (full["out"] / "figures/robustness.png").is_file()
    md, zh = (" ".join(full[k].split()) for k in ("md", "zh"))
    for better, base in (("pytorch_improved", "pytorch_reproduction"), ("numpy_tuned", "numpy_reproduction")):
        gain = {c: per[better][c] - per[base][c] for c in per[better]}
        largest, smallest = max(gain, key=gain.get), min(gain, key=gain.get)
        a, b = ROBUSTNESS["models"][better]["label"], ROBUSTNESS["models"][base]["label"]
        assert (f"{a} (" in md and f"keeps {100 * mean[better]:.2f}% on average over the corrupted sets, "
                f"against {100 * mean[base]:.2f}% for {b} (no augmentation): "
                f"{100 * (mean[better] - mean[base]):+.2f} points") in md  # fmt: skip
        assert (f"runs from {100 * gain[smallest]:+.2f} points on `{smallest}` to "
                f"{100 * gain[largest]:+.2f} points on `{largest}`") in md  # fmt: skip
        assert (f"差值从 `{smallest}` 的 {100 * gain[smallest]:+.2f} 个百分点到 `{largest}` 的 "
                f"{100 * gain[largest]:+.2f} 个百分点不等") in zh  # fmt: skip
    assert "on `gaussian_noise` to" in md and "points on `hflip`." in md  # as the fixture made them
    assert "Measured on Robust CPU (2 cores) at commit `abcdef012345`, in 27.4 min." in md
    assert "测量环境：Robust CPU（2 核），提交 `abcdef012345`，用时 27.4 min。" in zh
    assert "Left out: ResNet: not recorded in its metrics.json." not in md  # no label for it
    assert "Left out: pytorch_resnet: not recorded in its metrics.json." in md


def test_speed_is_stated_per_host_and_thread_count(full):
    """Every speed statement names the host and the threads it was measured with; no general
    claim. The README block states the per-host ratios as well."""
    md, zh = (" ".join(full[k].split()) for k in ("md", "zh"))
    ratios = sorted((int(b), r["ratio"]) for b, r in BENCH_RESULTS.items())
    host = "Bench CPU @ 3.1GHz, 2 cores, 3 BLAS/torch threads"
    listed = ", ".join(f"{x:.2f}" for _, x in ratios[:-1]) + f" and {ratios[-1][1]:.2f}"
    sizes = ", ".join(str(b) for b, _ in ratios[:-1]) + f" and {ratios[-1][0]}"
    assert (f"On {host}, NumPy trained at {listed} times PyTorch's images/s at batch sizes "
            f"{sizes}.") in md  # fmt: skip
    assert f"on {host}." in md and "在 Bench CPU @ 3.1GHz，2 核，BLAS/torch 线程数 3 上" in zh
    for text in (md, zh, full["readme"].read_text(encoding="utf-8")):
        assert not re.search(r"as fast as|about as fast|as quick as|一样快", text, re.I)
    block = " ".join(full["readme"].read_text(encoding="utf-8").split())
    assert f"at batch sizes {sizes}, on {host} (commit `fedcba987654`)" in block


def test_without_the_layer_profile_and_robustness_they_are_not_run(tmp_path, figure_cache):
    """Missing: a "not run yet" line in each language and no note; unreadable: a note as well."""
    built = _build(tmp_path, figure_cache, readme=False, notebooks=False, robustness=False,
                   bench="old")  # fmt: skip
    assert ("> **Not run:** the robustness experiment, not run yet: `make -C experiments robustness` "
            "(after `make run`)") in built["md"]  # fmt: skip
    assert "> **未运行：** 鲁棒性实验，尚未运行：`make -C experiments robustness`（在 `make run` 之后）" in built["zh"]
    assert "> **Not run:** the per-layer profile: no `bench_layers.json` beside" in built["md"]
    assert "> **未运行：** 逐层耗时剖析：" in built["zh"]
    assert not [n for n in built["result"]["notes"] if "robustness" in n["en"] or "per-layer" in n["en"]]
    for text in (built["md"], built["zh"]):
        for table in ("layer-profile", "robustness", "speed/before-after", "layer-profile/before-after"):
            assert table not in tables(text)
    (tmp_path / "robustness").mkdir()
    (tmp_path / "robustness" / "robustness.json").write_text('{"models": {}}', encoding="utf-8")
    (tmp_path / "bench_layers.json").write_text("{ not json", encoding="utf-8")
    built = _build(tmp_path, figure_cache, readme=False, notebooks=False, robustness=False,
                   bench="old")  # fmt: skip
    notes = [n["en"] for n in built["result"]["notes"]]
    assert any(n.startswith(f"robustness results at {tmp_path / 'robustness'}") for n in notes)
    assert any(n.startswith(f"per-layer profile at {tmp_path / 'bench_layers.json'}") for n in notes)
    assert any("bench_lenet.py --profile --record benchmarks/bench_layers.json" in n for n in notes)
