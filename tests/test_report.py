"""The report builder, built from FAKE records (tests/report_fixtures.py), then read back.

The English and Chinese reports share one section tree; figures and tables are numbered in
order; the numbers in the tables equal the records; the Chinese HTML follows CJK typography; no
absolute path leaks; a missing record stops the build naming the file; the PDF's main body fits
in 15 pages (when Chromium is installed).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys

import pytest
from report_fixtures import BENCH_RESULTS, SEEDS_AS_MARKED, make_inputs

from fashion_mnist import REPO_ROOT

_spec = importlib.util.spec_from_file_location("build_report", REPO_ROOT / "report/build_report.py")
build_report = importlib.util.module_from_spec(_spec)
sys.modules["build_report"] = build_report  # dataclasses look their module up
_spec.loader.exec_module(build_report)

HAVE_CHROMIUM = build_report.find_chromium() is not None and shutil.which("pdftotext") is not None
README = "# P\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\nTail.\n"
BOLD, BOLD_END = r"(?:\*\*|<strong>)", r"(?:\*\*|</strong>)"  # the Chinese report writes bold as HTML


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    inputs = make_inputs(root / "in")
    (root / "README.md").write_text(README, encoding="utf-8")
    report = build_report.build(inputs["myself"], inputs["pytorch"], root / "out",
                                experiments=inputs["experiments"], bench=inputs["bench"],
                                notebooks=inputs["notebooks"], readme=root / "README.md",
                                pdf=HAVE_CHROMIUM)  # fmt: skip
    out = root / "out"
    docs = {name: (out / name).read_text(encoding="utf-8")
            for name in ("report.md", "report.zh.md", "report.html", "report.zh.html")}  # fmt: skip
    return {"root": root, "out": out, "inputs": inputs, "report": report, "docs": docs,
            "records": inputs["records"]}  # fmt: skip


def headings(markdown: str) -> list[tuple[int, str]]:
    """(level, number) of every heading below the title: '2.1', '4', 'A.3'; the appendix's
    heading is the one without a number."""
    found = re.findall(r"^(#{2,4}) (\S+)", markdown, re.M)
    return [(len(h), n if re.fullmatch(r"[\d.]+|A\.\d+", n) else "-") for h, n in found]


def tables(markdown: str) -> dict[str, list[list[str]]]:
    """Every table announced by ``<!-- table: ID -->``: its rows, header first."""
    found = {}
    for match in re.finditer(r"<!-- table: (\S+) -->\n\n((?:\|.*\n?)+)", markdown):
        lines = match[2].strip().splitlines()
        rows = [[c.strip() for c in line.strip()[1:-1].split(" | ")] for line in lines]
        found[match[1]] = [rows[0], *rows[2:]]
    return found


def num(cell: str) -> float:
    return float(re.sub(r"[^\d.\-−+]", "", cell).replace("−", "-"))


def test_english_and_chinese_have_the_same_section_tree(built):
    en, zh = headings(built["docs"]["report.md"]), headings(built["docs"]["report.zh.md"])
    assert en == zh
    top = [n for level, n in en if level == 2]
    assert top == ["1", "2", "3", "4", "5", "6", "-"]
    assert [n for level, n in en if level == 3][:2] == ["2.1", "2.2"]
    assert sum(1 for level, _ in en if level == 4) == 2  # "Key techniques" under 3.1 and 3.2


def test_an_edited_tree_is_caught():
    en = "## 1 A\n\n### 1.1 B\n\n## 2 C\n"
    assert headings(en) != headings(en.replace("### 1.1 B", "#### 1.1 B"))


@pytest.mark.parametrize("doc", ["report.md", "report.zh.md"])
def test_figures_and_tables_are_numbered_in_order(built, doc):
    text = built["docs"][doc]
    for word in (("Figure", "Table") if doc == "report.md" else ("图", "表")):
        numbers = [int(n) for n in re.findall(rf"^{BOLD}{word} (\d+)\.?{BOLD_END}", text, re.M)]
        assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 8, word
    assert text.count("<!-- table:") <= len(re.findall(rf"^{BOLD}(?:Table|表) \d+", text, re.M))


def test_both_languages_have_the_same_figures_drawn_in_their_language(built):
    en = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", built["docs"]["report.md"])
    zh = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", built["docs"]["report.zh.md"])
    assert [p.replace(".en.png", "") for p in en] == [p.replace(".zh.png", "") for p in zh]
    assert all(p.endswith(".en.png") for p in en) and all(p.endswith(".zh.png") for p in zh)
    for path in en + zh:
        assert (built["out"] / path).is_file(), path
        assert "data:image/png;base64" in built["docs"]["report.html"]


def test_tables_equal_the_records(built):
    rec, report = built["records"], built["report"]
    for doc in ("report.md", "report.zh.md"):
        t = tables(built["docs"][doc])
        calibration = [rec[m]["insight"]["calibration"] for m in ("cnn-by-myself", "cnn-by-pytorch")]
        for row, c in zip(t["calibration"][1:], calibration, strict=True):
            assert num(row[1]) == pytest.approx(c["temperature"], abs=1e-3)
            assert num(row[2]) == pytest.approx(100 * c["ece_before"], abs=0.005)
            assert num(row[3]) == pytest.approx(100 * c["ece_after"], abs=0.005)
        for row, (batch, r) in zip(t["speed"][1:], BENCH_RESULTS.items(), strict=True):
            assert (int(row[1]), num(row[4])) == (int(batch), pytest.approx(r["ratio"], abs=0.005))
            assert row[0] == r["cpu"]
        full = rec["ablation_full"]
        gains = [full["improved"]["val_accuracy"] - full[n]["val_accuracy"]
                 for n in ("no_translate", "no_flips", "tta_off")]  # fmt: skip
        assert [num(row[3]) for row in t["ablation-full"][1:]] == pytest.approx([100 * g for g in gains], abs=0.005)
        f1 = [c["f1"] for c in rec["cnn-by-pytorch"]["test_report"]["per_class"]]
        assert [num(row[3]) for row in t["per-class"][1:]] == pytest.approx([100 * x for x in f1], abs=0.05)
        sweep = rec["sweep"]["runs"]
        assert [num(row[2]) for row in t["sweep"][1:]] == pytest.approx([100 * r["val_accuracy"] for r in sweep], abs=0.005)
        assert len(t["epochs/reproduction"]) == 21
    assert report.seeds["mean"] == pytest.approx(sum(SEEDS_AS_MARKED) / len(SEEDS_AS_MARKED))


def test_prose_numbers_come_from_the_records(built):
    md, rec = built["docs"]["report.md"], built["records"]
    resnet = rec["summary"]["resnet"]
    assert f"**{100 * resnet['test_accuracy']:.2f}%** at its validation-selected epoch" in md
    assert "a ResNet trained on a GPU, the strongest network here" in md
    ens = rec["cnn-by-pytorch"]["ensemble"]
    assert f"{100 * ens['test_accuracy']:.2f}%, below its best member" in md
    assert "commit `374c6fa`" in md  # the 4-epoch ablation's commit is named
    seeds = f"{100 * sum(SEEDS_AS_MARKED) / 4:.2f}%"
    assert seeds in md and seeds in built["docs"]["report.zh.md"]


def test_label_smoothing_floor():
    assert build_report.smoothing_floor(0.0) == 0.0
    assert build_report.smoothing_floor(0.1) == pytest.approx(0.5003, abs=1e-3)


def test_chinese_html_follows_cjk_typography(built):
    html = built["docs"]["report.zh.html"]
    cjk = "\u4e00-\u9fff\u3000-\u303f\uff00-\uffef"
    # a bold phrase closes after its full-width punctuation: **结论。** not **结论**。
    assert not re.search(r"[\u4e00-\u9fff]</strong>[。，、；：！？]", html)
    paragraphs = [re.sub(r"<[^>]+>", "", p) for p in re.findall(r"<(?:p|li|td)>(.*?)</(?:p|li|td)>", html, re.S)]
    assert len(paragraphs) > 50
    assert not [text for text in paragraphs if "**" in text]  # every bold phrase rendered as bold
    for text in paragraphs:  # a line break between CJK characters shows as a space
        assert not re.search(rf"[{cjk}][ \n]+[{cjk}]", text), text


def test_no_absolute_paths(built):
    for name, text in built["docs"].items():
        for root in (str(REPO_ROOT), str(built["root"])):
            assert root not in text, name
    readme = (built["root"] / "README.md").read_text(encoding="utf-8")
    assert "old" not in readme and "Tail." in readme and str(built["root"]) not in readme


def test_a_missing_record_is_an_error_naming_it(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    (inputs["experiments"] / "numpy_sweep" / "numpy_sweep.json").unlink()
    with pytest.raises(build_report.ReportInputError, match="numpy_sweep.json"):
        build_report.build(inputs["myself"], inputs["pytorch"], tmp_path / "out",
                           experiments=inputs["experiments"], bench=inputs["bench"], pdf=False)  # fmt: skip


def test_metrics_without_insight_is_an_error(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    path = inputs["myself"] / "metrics.json"
    path.write_text(re.sub(r'"insight"', '"no_insight"', path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(build_report.ReportInputError, match="'insight'"):
        build_report.build(inputs["myself"], inputs["pytorch"], tmp_path / "out",
                           experiments=inputs["experiments"], bench=inputs["bench"], pdf=False)  # fmt: skip


@pytest.mark.parametrize("name", ["report.md", "report.zh.md"])
def test_no_record_is_printed_raw(built, name):
    """Every value is formatted: no Python dict, list of floats or None slips into the prose."""
    for line in built["docs"][name].splitlines():
        assert not re.search(r"\{'|\[\d+\.\d+, |\bNone\b", line), line


@pytest.mark.skipif(not HAVE_CHROMIUM, reason="chromium and pdftotext needed")
@pytest.mark.parametrize("name", ["report.pdf", "report.zh.pdf"])
def test_pdf_names_no_path_of_this_machine(built, name):
    data = (built["out"] / name).read_bytes()
    assert b"file://" not in data and str(built["root"]).encode() not in data


@pytest.mark.skipif(not HAVE_CHROMIUM, reason="chromium and pdftotext needed")
@pytest.mark.parametrize("name", ["report.pdf", "report.zh.pdf"])
def test_pdf_main_body_fits_in_15_pages_with_page_numbers(built, name):
    pdf = built["out"] / name
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", pdf], capture_output=True,
                                                               text=True).stdout)[1])  # fmt: skip
    text = [subprocess.run(["pdftotext", "-f", str(i), "-l", str(i), pdf, "-"], capture_output=True,
                           text=True).stdout for i in range(1, pages + 1)]  # fmt: skip
    appendix = next(i for i, page in enumerate(text, 1) if re.search(r"^(Appendix|附录)$", page, re.M))
    assert appendix - 1 <= 15
    assert all(f"{i} / {pages}" in page for i, page in enumerate(text, 1))
