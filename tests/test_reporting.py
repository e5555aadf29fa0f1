"""Reporting builds tables, the seven plots and the report from a run folder's files alone."""

from __future__ import annotations

import ast
import base64
import html
import json
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from advmnist.errors import RunDirError
from advmnist.reporting import PLOT_CAPTIONS, build_report, headline_table, load_run, plot_robustness

try:
    from fake_run import EPS, accuracy_object, eval_results, make_fake_run, robust_results
except ImportError:  # tests/ imported as a package
    from tests.fake_run import EPS, accuracy_object, eval_results, make_fake_run, robust_results

SRC = Path(__file__).resolve().parents[1] / "src"
REPORTING = SRC / "advmnist" / "reporting"
PLOTS = list(PLOT_CAPTIONS)
JSON_FILES = [
    "config.json",
    "manifest.json",
    "baseline_results.json",
    "fgsm_attack_results.json",
    "defended_training_results.json",
    "defended_fgsm_results.json",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    run_dir = make_fake_run(tmp_path_factory.mktemp("run") / "fake")
    return run_dir, build_report(run_dir)


@pytest.fixture(scope="module")
def built_robust(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A newer run: with the strong-attack files `<model>_robust_results.json`."""
    run_dir = make_fake_run(tmp_path_factory.mktemp("run") / "fake", robust=True)
    return run_dir, build_report(run_dir)


def _fmt(fraction: float, n: int = 10_000) -> str:
    acc = accuracy_object(fraction, n)
    return f"{100 * acc['value']:.2f}% [{100 * acc['ci_low']:.2f}, {100 * acc['ci_high']:.2f}]"


def _png_dpi(path: Path) -> float:
    """The horizontal resolution from the PNG pHYs chunk, in dots per inch."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"pHYs":
            ppu_x, _, unit = struct.unpack(">IIB", data[pos + 8 : pos + 17])
            assert unit == 1  # pixels per metre
            return ppu_x * 0.0254
        pos += 12 + length
    raise AssertionError(f"{path} has no pHYs chunk")


def _edit_json(path: Path, edit: object) -> None:
    obj = json.loads(path.read_text(encoding="utf-8"))
    edit(obj)  # type: ignore[operator]
    path.write_text(json.dumps(obj), encoding="utf-8")


def test_build_report_writes_every_output(built: tuple[Path, list[Path]]) -> None:
    run_dir, written = built
    expected = {
        "results_tables.txt",
        "report.md",
        "report.txt",
        *(f"plots/{p}" for p in PLOTS),
    }
    assert {p.relative_to(run_dir).as_posix() for p in written} == expected
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)


@pytest.mark.parametrize("name", PLOTS)
def test_plots_decode(built: tuple[Path, list[Path]], name: str) -> None:
    with Image.open(built[0] / "plots" / name) as img:
        img.load()
        width, height = img.size
        assert img.format == "PNG"
    assert width >= 400 and height >= 300


def test_final_plot_is_300_dpi_and_others_are_not(
    built: tuple[Path, list[Path]],
) -> None:
    plots = built[0] / "plots"
    assert round(_png_dpi(plots / "final_robustness_comparison.png")) == 300
    for name in PLOTS[:-1]:
        assert 100 <= round(_png_dpi(plots / name)) <= 150, name
    with Image.open(plots / "final_robustness_comparison.png") as img:
        assert min(img.size) >= 2000  # 300 DPI on a figure several inches wide


def test_report_md_links_every_plot_and_txt_names_them(
    built: tuple[Path, list[Path]],
) -> None:
    md = (built[0] / "report.md").read_text(encoding="utf-8")
    txt = (built[0] / "report.txt").read_text(encoding="utf-8")
    for name in PLOTS:
        assert f"](plots/{name})" in md
        assert f"plots/{name}" in txt
    assert "![" not in txt
    for section in (
        "Setup",
        "Results",
        "Is the baseline 'naturally robust'?",
        "The defense",
    ):
        assert f"## {section}" in md
        assert section in txt
    assert "advmnist run --config configs/seed.toml" in md and "Reproduce" in txt


def test_html_report_is_one_self_contained_page(built_robust: tuple[Path, list[Path]]) -> None:
    run_dir = built_robust[0]
    build_report(run_dir, as_html=True)
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]*)"', page)
    assert len(images) == len(PLOTS) + 1  # the seed's seven and the strong-attack curves
    for src in images:
        kind, data = src.split(",", 1)
        assert kind == "data:image/png;base64" and base64.b64decode(data)[:4] == b"\x89PNG"
    assert not re.search(r"(src|href)=\"(?!data:|#)", page) and "<script" not in page  # #: a link within the page
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    for heading in re.findall(r"^## (.+)$", md, flags=re.M):  # every section of the markdown report
        assert re.search(f'<h2 id="[a-z0-9-]+">{re.escape(html.escape(heading))}</h2>', page)
    assert "<summary>manifest.json</summary>" in page and "<summary>config.json</summary>" in page


def test_tables_show_intervals_for_every_eps(built: tuple[Path, list[Path]]) -> None:
    tables = (built[0] / "results_tables.txt").read_text(encoding="utf-8")
    for label in EPS:
        assert f"eps {label}" in tables
    assert _fmt(0.9695) in tables  # baseline at 8/255
    assert _fmt(0.9785) in tables  # defended at 8/255
    assert _fmt(0.02) in tables  # baseline at 0.3
    assert "+0.90" in tables  # improvement at 8/255 in pp
    assert "96.95%" in tables and "97.85%" in tables  # the seed's published numbers
    assert "1.24x" in tables  # 63.2 s / 51.0 s


def test_headline_table_lists_clean_and_every_eps(
    built: tuple[Path, list[Path]],
) -> None:
    head = headline_table(load_run(built[0]))
    lines = head.splitlines()
    assert any(line.startswith("clean") and _fmt(0.9901) in line for line in lines)
    for label in EPS:
        assert any(line.startswith(label) for line in lines), label


def test_report_reads_the_curve_from_the_files(built: tuple[Path, list[Path]]) -> None:
    txt = (built[0] / "report.txt").read_text(encoding="utf-8")
    flat = " ".join(txt.split())
    assert "62.00% at 0.1, 12.00% at 0.2, 2.00% at 0.3" in flat
    assert "collapses" in flat
    assert "Madry et al. 2018" in flat
    assert "upper bound" in flat


def test_report_does_not_call_a_robust_baseline_collapsed(tmp_path: Path) -> None:
    run_dir = make_fake_run(tmp_path / "run")

    def robust_at_03(obj: dict) -> None:
        obj["results"][-1]["robust_accuracy"] = accuracy_object(0.80)

    _edit_json(run_dir / "fgsm_attack_results.json", robust_at_03)
    build_report(run_dir)
    flat = " ".join((run_dir / "report.txt").read_text(encoding="utf-8").split())
    assert "keeps 80.00% under FGSM" in flat
    assert "collapses" not in flat
    assert "gradient masking" in flat


def test_report_without_large_eps_says_so(tmp_path: Path) -> None:
    run_dir = make_fake_run(tmp_path / "run")
    for name in ("fgsm_attack_results.json", "defended_fgsm_results.json"):
        _edit_json(run_dir / name, lambda obj: obj.update(results=obj["results"][:3]))
    build_report(run_dir)
    txt = (run_dir / "report.txt").read_text(encoding="utf-8")
    assert "no eps beyond the seed's" in txt
    assert "eps 0.3" not in (run_dir / "results_tables.txt").read_text(encoding="utf-8")


def test_report_tolerates_nulls_and_eps_labels(tmp_path: Path) -> None:
    """A manifest written before the run ends holds nulls; train_eps may be a label."""
    run_dir = make_fake_run(tmp_path / "run")
    _edit_json(run_dir / "manifest.json", lambda obj: obj.update(peak_rss_mb=None, timings={}))
    _edit_json(
        run_dir / "defended_training_results.json",
        lambda obj: obj.update(train_eps="8/255"),
    )
    build_report(run_dir)
    txt = (run_dir / "report.txt").read_text(encoding="utf-8")
    assert "peak RSS: unknown" in txt
    assert "train eps 8/255" in txt
    tables = (run_dir / "results_tables.txt").read_text(encoding="utf-8")
    assert any(line.startswith("defended") and "8/255" in line for line in tables.splitlines())


@pytest.mark.parametrize("name", [*JSON_FILES, "samples.safetensors"])
def test_missing_file_is_named(tmp_path: Path, name: str) -> None:
    run_dir = make_fake_run(tmp_path / "run")
    (run_dir / name).unlink()
    with pytest.raises(RunDirError, match=name.replace(".", r"\.")):
        build_report(run_dir)
    assert not (run_dir / "report.md").exists()
    assert not (run_dir / "results_tables.txt").exists()


@pytest.mark.parametrize("name", JSON_FILES)
def test_corrupt_json_is_named(tmp_path: Path, name: str) -> None:
    run_dir = make_fake_run(tmp_path / "run")
    (run_dir / name).write_text('{"truncated": ', encoding="utf-8")
    with pytest.raises(RunDirError, match=rf"{name.replace('.', '[.]')}.*invalid JSON"):
        load_run(run_dir)


def test_fraction_outside_unit_interval_is_rejected(tmp_path: Path) -> None:
    run_dir = make_fake_run(tmp_path / "run")
    _edit_json(
        run_dir / "defended_fgsm_results.json",
        lambda obj: obj["results"][2].update(attack_success_rate=1.5),
    )
    with pytest.raises(RunDirError, match=r"defended_fgsm_results\.json.*results\[2\]"):
        load_run(run_dir)


def test_missing_key_is_named(tmp_path: Path) -> None:
    run_dir = make_fake_run(tmp_path / "run")
    _edit_json(run_dir / "baseline_results.json", lambda obj: obj.pop("training_seconds"))
    with pytest.raises(RunDirError, match=r"baseline_results\.json.*training_seconds"):
        load_run(run_dir)


def test_missing_tensor_is_named_before_anything_is_written(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    run_dir = make_fake_run(tmp_path / "run")
    path = run_dir / "samples.safetensors"
    tensors = load_file(path)
    del tensors["baseline/adv/2"]  # the 8/255 images of the adversarial-examples plot
    save_file(tensors, str(path), metadata={"eps_labels": json.dumps(list(EPS))})
    with pytest.raises(RunDirError, match="baseline/adv/2"):
        build_report(run_dir)
    assert not (run_dir / "results_tables.txt").exists()


def test_reporting_needs_no_torch_and_no_pyplot(tmp_path: Path) -> None:
    """Build a report in a fresh interpreter where importing torch fails.

    `advmnist/__init__.py` may import torch for the rest of the package, so the script registers
    `advmnist` as a bare package first: this checks what reporting itself imports.
    """
    run_dir = make_fake_run(tmp_path / "run", robust=True)
    script = textwrap.dedent(f"""
        import importlib.abc, sys, types
        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked")
        sys.meta_path.insert(0, NoTorch())
        pkg = types.ModuleType("advmnist")
        pkg.__path__ = [{str(SRC / "advmnist")!r}]
        sys.modules["advmnist"] = pkg
        import advmnist.reporting
        advmnist.reporting.build_report({str(run_dir)!r})
        assert "torch" not in sys.modules
        assert "matplotlib.pyplot" not in sys.modules, "reporting must not use pyplot"
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (run_dir / "report.md").is_file()


def test_reporting_imports_only_allowed_modules() -> None:
    allowed_third_party = {"numpy", "matplotlib", "safetensors", "PIL"}
    allowed_own = {"advmnist.io", "advmnist.errors"}
    files = sorted(REPORTING.glob("*.py"))
    assert {f.name for f in files} >= {
        "__init__.py",
        "load.py",
        "tables.py",
        "plots.py",
    }
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "use":
                raise AssertionError(f"{file.name} calls matplotlib.use")
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "advmnist":
                    ok = name in allowed_own or name.startswith("advmnist.reporting")
                else:
                    ok = top in allowed_third_party or top in sys.stdlib_module_names
                assert ok and name != "matplotlib.pyplot", f"{file.name} imports {name}"


# --- strong attacks (PGD, AutoAttack): optional files of newer runs ---


def _flat(run_dir: Path, name: str = "report.txt") -> str:
    return " ".join((run_dir / name).read_text(encoding="utf-8").split())


def test_without_robust_files_there_is_no_strong_section(built: tuple[Path, list[Path]]) -> None:
    run_dir, written = built
    assert not (run_dir / "plots" / "robust_curves.png").exists()
    assert "plots/robust_curves.png" not in {p.relative_to(run_dir).as_posix() for p in written}
    for name in ("report.md", "report.txt", "results_tables.txt"):
        text = (run_dir / name).read_text(encoding="utf-8")
        assert "Strong attacks" not in text and "AutoAttack" not in text.replace("(PGD, AutoAttack)", "")
    assert load_run(run_dir).robust == {}


def test_robust_files_add_tables_section_and_plot(built_robust: tuple[Path, list[Path]]) -> None:
    run_dir, written = built_robust
    plot = run_dir / "plots" / "robust_curves.png"
    assert plot in written
    with Image.open(plot) as img:
        img.load()
        assert img.format == "PNG" and min(img.size) >= 400
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Strong attacks (PGD-40, AutoAttack)" in md and "](plots/robust_curves.png)" in md
    assert all(f"](plots/{name})" in md for name in PLOTS)  # the seven stay
    tables = (run_dir / "results_tables.txt").read_text(encoding="utf-8")
    assert "Strong attacks at the MNIST threat model" in tables and "every 10th test image" in tables
    rows = tables.splitlines()
    # baseline under AutoAttack at 0.1: 25% of 1000 left, 991 - 250 = 741 broken, 735 of them by APGD-CE
    assert any(r.split()[:3] == ["baseline", "AutoAttack", "1000"] and _fmt(0.25, 1000) in r for r in rows)
    component = next(r for r in rows if r.split()[:4] == ["baseline", "AutoAttack", "eps", "0.1"])
    assert component.split()[4:] == ["735", "5", "1", "250/1000"]
    assert "apgd-ce" in tables and "fab-t" in tables


def test_strong_section_says_fgsm_overstates_with_the_numbers(built_robust: tuple[Path, list[Path]]) -> None:
    flat = _flat(built_robust[0])
    assert (
        f"Under AutoAttack at eps 0.3 the defended model keeps {_fmt(0.004, 1000)}; FGSM said {_fmt(0.10)}: "
        "FGSM overstates its robustness by 9.60 pp" in flat
    )
    assert f"The FGSM-trained model does not hold at the MNIST budget: at eps 0.3 it keeps {_fmt(0.004, 1000)}" in flat
    assert f"largest at eps 0.2: FGSM {_fmt(0.40)}, AutoAttack {_fmt(0.05, 1000)}" in flat
    assert "the stronger attacks (PGD, AutoAttack) below can only lower these numbers" in flat
    assert "stronger attacks find more: passed (2 of 2)" in flat  # in the sanity checks, one line per check
    assert "defended (strong attacks): passed (autoattack <= pgd at every eps)" in flat


def test_a_defended_model_that_holds_is_not_called_broken(tmp_path: Path) -> None:
    run_dir = make_fake_run(tmp_path / "run", robust=True)
    holds = {"pgd": {"0.1": 0.95, "0.2": 0.93, "0.3": 0.91}, "autoattack": {"0.1": 0.94, "0.2": 0.92, "0.3": 0.89}}
    (run_dir / "defended_robust_results.json").write_text(json.dumps(robust_results("defended", holds, flagged=True)))
    build_report(run_dir)
    flat = _flat(run_dir)
    assert f"The FGSM-trained model keeps {_fmt(0.89, 1000)} at eps 0.3 even under AutoAttack" in flat
    assert "does not hold at the MNIST budget" not in flat
    assert f"FGSM said {_fmt(0.10)}: no lower than FGSM" in flat
    assert "stronger attacks find more: FLAGGED for defended (strong attacks) (1 of 2 passed)" in flat
    assert "Warning: 1 sanity check(s) of the strong attacks flagged a problem" in flat


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda obj: obj.update(schema_version=7), "unsupported schema_version 7"),
        (lambda obj: obj["attacks"][1]["results"][2].update(attack_success_rate=-0.5), r"attacks\[1\]\.results\[2\]"),
        (lambda obj: obj.pop("attacks"), "missing key"),
    ],
)
def test_bad_robust_file_is_named(tmp_path: Path, edit: object, match: str) -> None:
    run_dir = make_fake_run(tmp_path / "run", robust=True)
    _edit_json(run_dir / "defended_robust_results.json", edit)
    with pytest.raises(RunDirError, match=rf"defended_robust_results\.json.*{match}"):
        build_report(run_dir)
    assert not (run_dir / "report.md").exists()


def test_plot_robustness_api(tmp_path: Path) -> None:
    a, b = eval_results("runs/a/model.safetensors"), eval_results("runs/b/model.safetensors")
    path = plot_robustness([a, b], tmp_path / "curves.png", labels=["fgsm-trained", "other"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="2 label"):
        plot_robustness([a], tmp_path / "x.png", labels=["one", "two"])
    with pytest.raises(ValueError, match="mix norms"):
        plot_robustness([a, {**b, "norm": "l2"}], tmp_path / "x.png")
    with pytest.raises(RunDirError, match="result object 2.*clean_accuracy"):
        plot_robustness([a, {**b, "clean_accuracy": {"value": 2}}], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
