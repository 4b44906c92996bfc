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
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_fixtures import make_fake_runs

from fashion_mnist import REPO_ROOT
from fashion_mnist.files import read_json, write_json

_spec = importlib.util.spec_from_file_location("build_report", REPO_ROOT / "report/build_report.py")
build_report = importlib.util.module_from_spec(_spec)
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


def _build(root: Path, figure_cache: Path, *, quick=False, pdf=False, readme=True, **fake):
    runs = make_fake_runs(root / "runs", figure_cache=figure_cache, quick=quick, **fake)
    readme_path = None
    if readme:
        readme_path = root / "README.md"
        readme_path.write_text(README_TEXT, encoding="utf-8")
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        result = build_report.build(runs["myself"], runs["pytorch"], root / "out",
                                    runs["notebooks"], quick=quick, readme=readme_path,
                                    pdf=pdf)  # fmt: skip
    out = root / "out"
    return {
        "out": out, "runs": runs, "result": result, "metrics": runs["metrics"],
        "messages": stderr.getvalue() + stdout.getvalue(), "readme": readme_path,
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
    assert "**Not run:** the ResNet (needs a GPU)" in full["md"]


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
        assert same_pct(row[1], build_report.ORIGINAL_RESULTS[model])
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
    # public reference points: each constant is there, and ours are in it
    values = [num(r[1]) for r in t["references"][1:]]
    assert values == sorted(values)
    for *_, acc in build_report.REFERENCE_POINTS:
        assert pct(acc) in values
    assert pct(myself["test_accuracy"]) in values and pct(torch["test_accuracy"]) in values
    # provenance: stages with times, training time from the metrics
    stage_rows = t["stages"][1:]
    assert any(same(r[1], myself["train_seconds"], tol=0.051) for r in stage_rows)
    assert any("nbconvert" in r[0] or "notebook" in r[0] for r in stage_rows)


def test_the_prose_numbers_come_from_the_metrics(full):
    myself, torch = full["metrics"]["cnn-by-myself"], full["metrics"]["cnn-by-pytorch"]
    md = full["md"]
    conclusions = md.split("## 10. Conclusions", 1)[1].split("## 11.", 1)[0]
    assert f"{100 * myself['test_accuracy']:.2f}%" in conclusions
    assert f"{100 * torch['test_accuracy']:.2f}%" in conclusions
    assert f"{100 * (myself['test_accuracy'] - 0.8612):+.2f} points" in conclusions
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
    # the NumPy half is complete, and the table of the missing model has no row
    t = tables(md)
    assert [r[0] for r in t["comparison/all"][1:]] == ["cnn-by-myself", "cnn-by-myself"]
    assert t["original"][2][3] == "–"
    assert not (only_myself["out"] / "notebooks").exists()


def test_only_pytorch_with_a_resnet(tmp_path, figure_cache):
    """cnn-by-myself missing (its data section too), the ResNet present with its hardware."""
    built = _build(tmp_path, figure_cache, myself=False, resnet=True, notebooks=False)
    assert str(built["runs"]["myself"] / "metrics.json") in built["messages"]
    md, zh = built["md"], built["zh"]
    resnet = built["metrics"]["cnn-by-pytorch"]["resnet"]
    section = md.split("### ResNet", 1)[1].split("## 9.", 1)[0]
    assert resnet["hardware"] in section
    assert f"{100 * resnet['test_accuracy']:.2f}%" in section
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
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "report/build_report.py"), "--quick", "--no-pdf",
         "--myself", str(runs["myself"]), "--pytorch", str(runs["pytorch"]),
         "--out", str(out), "--notebooks", str(tmp_path / "no-notebooks")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "runs/quick" not in proc.stdout  # the folders given on the command line were used
    for name in ("report.md", "report.zh.md"):
        assert "QUICK" in (out / name).read_text(encoding="utf-8").splitlines()[0]
    assert "<title>QUICK" in (out / "report.html").read_text(encoding="utf-8")
    assert "README" not in proc.stdout  # a quick build never touches the README
    assert "cnn-by-myself.ipynb not found" in proc.stderr


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
