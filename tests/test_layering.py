"""The architecture's import rules, checked on the source with `ast` (relative imports resolved too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import advmnist

SRC = Path(__file__).resolve().parents[1] / "src" / "advmnist"
MODULES = {
    ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p for p in SRC.rglob("*.py")
}


def _absolute(node: ast.ImportFrom, module: str, path: Path) -> str:
    """The absolute module an `from X import ...` names; `from . import x` and `from ..a import b` resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
    return lines


def _imports(path: Path, module: str | None = None, *, typing_too: bool = True) -> set[str]:
    """Every module `path` imports (also inside functions): `import a.b` -> a.b, `from a import b` -> a and a.b."""
    module = module or next(m for m, p in MODULES.items() if p == path)
    tree = ast.parse(path.read_text())
    skip = set() if typing_too else _type_checking_lines(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, path)
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def _package_imports(package: str) -> set[str]:
    return set().union(*(_imports(p) for p in (SRC / package).rglob("*.py")))


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from ..training import fit\nfrom . import norms\n")
    found = _imports(probe, "advmnist.attacks.probe")
    assert {"advmnist.training", "advmnist.training.fit", "advmnist.attacks.norms"} <= found


def _layer_breaks(package: str, forbidden: tuple[str, ...]) -> set[str]:
    return {m for m in _package_imports(package) if m.startswith(forbidden)}


def test_attacks_do_not_import_training_evaluation_or_cli() -> None:
    forbidden = ("advmnist.training", "advmnist.evaluation", "advmnist.cli", "advmnist.study", "advmnist.tasks")
    assert not _layer_breaks("attacks", forbidden)


def test_evaluation_does_not_import_training_tasks_or_cli() -> None:
    assert not _layer_breaks("evaluation", ("advmnist.training", "advmnist.cli", "advmnist.tasks", "advmnist.study"))


def test_certification_reads_models_and_data_only() -> None:
    if not (SRC / "certification").is_dir():
        return  # the layer does not exist yet; the rule is here for when it lands
    assert not _layer_breaks("certification", ("advmnist.training", "advmnist.evaluation", "advmnist.cli"))


def test_reporting_needs_no_torch() -> None:
    assert not {m for m in _package_imports("reporting") if m.split(".")[0] == "torch"}
    code = "import sys, advmnist.reporting, advmnist.reporting.comparison, advmnist.reporting.detection\n"
    code += "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('advmnist'))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC.parent)}
    )
    assert done.returncode == 0, done.stderr  # not even through another advmnist module


def test_nothing_imports_the_cli() -> None:
    users = [
        p.name
        for p in SRC.rglob("*.py")
        if any(m.startswith("advmnist.cli") for m in _imports(p)) and p.name != "__main__.py" and "cli" not in p.parts
    ]
    assert users == []


def _edges() -> dict[str, set[str]]:
    """Module -> the advmnist modules it imports (a package's re-exports followed to the defining module)."""

    def reexports(package: str) -> dict[str, str]:
        path = MODULES.get(package)
        if path is None or path.name != "__init__.py":
            return {}
        out = {}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                out |= {a.asname or a.name: _absolute(node, package, path) for a in node.names}
        return out

    edges = {}
    for module, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        targets = set()
        for name in _imports(path, typing_too=False):
            if name in MODULES:
                targets.add(name)
            else:
                base, _, attr = name.rpartition(".")
                targets.add(reexports(base).get(attr, base))
        edges[module] = {t for t in targets if t in MODULES and MODULES[t].name != "__init__.py" and t != module}
    return edges


def test_no_import_cycles_between_modules() -> None:
    edges = _edges()
    cycles = set()

    def walk(start: str, node: str, path: tuple[str, ...]) -> None:
        for nxt in edges.get(node, ()):
            if nxt == start:
                cycles.add(tuple(sorted(path)))
            elif nxt not in path and len(path) < 8:
                walk(start, nxt, (*path, nxt))

    for module in edges:
        walk(module, module, (module,))
    assert not cycles


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
