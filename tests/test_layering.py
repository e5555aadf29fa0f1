"""The architecture's import rules, checked on the source with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import advmnist

SRC = Path(__file__).resolve().parents[1] / "src" / "advmnist"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _package_imports(package: str) -> set[str]:
    return set().union(*(_imports(p) for p in (SRC / package).rglob("*.py")))


def test_attacks_do_not_import_training_evaluation_or_cli() -> None:
    bad = {
        m
        for m in _package_imports("attacks")
        if m.startswith(("advmnist.training", "advmnist.evaluation", "advmnist.cli", "advmnist.study"))
    }
    assert not bad


def test_reporting_needs_no_torch() -> None:
    assert not {m for m in _package_imports("reporting") if m.split(".")[0] == "torch"}


def test_nothing_imports_the_cli() -> None:
    users = [p.name for p in SRC.rglob("*.py") if "advmnist.cli" in _imports(p) and p.name != "__main__.py"]
    assert users == []


def test_no_pickle_and_weights_only_loads() -> None:
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text, path
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, path


def test_public_api_is_curated_and_importable() -> None:
    assert advmnist.__all__ == sorted(advmnist._WHERE)
    for name in advmnist.__all__:
        assert getattr(advmnist, name) is not None
    assert advmnist.train is advmnist.fit
