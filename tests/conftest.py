"""Shared fixtures: a small synthetic MNIST-class dataset in real IDX files, no network needed."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_USER_CACHE = os.environ.get("ADVMNIST_CACHE")  # captured before any fixture isolates it
NAMES = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (the format of the MNIST files)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 images: class k is a bright bar at row 2 + 2k, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 60, (n, 28, 28))
    for i, k in enumerate(y):
        x[i, 2 + 2 * k : 4 + 2 * k, 4:24] = rng.integers(180, 256)
    return x.astype(np.uint8), y.astype(np.uint8)


def write_synthetic(folder: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """Write the four IDX files and a checksums JSON; return the checksums path."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    arrays["train-images"], arrays["train-labels"] = synthetic_digits(n_train, 0)
    arrays["test-images"], arrays["test-labels"] = synthetic_digits(n_test, 1)
    files = {}
    for key, name in NAMES.items():
        data = idx_bytes(arrays[key])
        (folder / name).write_bytes(data)
        files[key] = [name, hashlib.sha256(data).hexdigest()]
    checksums = folder / "checksums.json"
    checksums.write_text(json.dumps({"name": "synthetic", "files": files}))
    return checksums


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads the real MNIST files (the `real_mnist` fixture) is `real_data`, whatever it says."""
    for item in items:
        if "real_mnist" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data folder, checksums file) of the synthetic dataset, shared by the session."""
    folder = tmp_path_factory.mktemp("synthetic")
    return folder, write_synthetic(folder)


@pytest.fixture
def spec(synthetic: tuple[Path, Path]):
    from advmnist.data import DatasetSpec

    return DatasetSpec.from_checksums(synthetic[1])


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's cache or data folder from a unit test."""
    monkeypatch.setenv("ADVMNIST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ADVMNIST_DATA", raising=False)


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m advmnist ARGS` in a subprocess (the real entry point, real exit codes)."""
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "advmnist", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=900,
        check=False,
    )


def require(module: str, why: str):  # noqa: ANN201
    """Import a dev-only module; a skip outside CI, a failure in CI (where make test installs it)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} missing in CI: {why}", pytrace=False)
        pytest.skip(f"{module} not installed: {why}", allow_module_level=True)


@pytest.fixture
def bf16_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 autocast even on a CPU without native bf16 (where `auto` runs fp32): for tests of the bf16 path."""
    monkeypatch.setenv("ADVMNIST_BF16", "on")


@pytest.fixture
def real_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's real MNIST cache (filled by `advmnist data`, which `make test` runs first)."""
    if _USER_CACHE is None:
        monkeypatch.delenv("ADVMNIST_CACHE", raising=False)
    else:
        monkeypatch.setenv("ADVMNIST_CACHE", _USER_CACHE)
    from advmnist.data.mnist import KEYS, MNIST, _find_local

    if not all(_find_local(MNIST, key, None) is not None for key in KEYS):
        message = "real MNIST not in the cache: run `advmnist data` first"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def synthetic_config(
    folder: Path,
    synthetic: tuple[Path, Path],
    epochs: tuple[int, int] = (2, 2),
    n_train: int = 600,
    robust_attacks: tuple[str, ...] = ("pgd", "autoattack"),
) -> Path:
    """A study config TOML that runs the seed study on the synthetic dataset.

    The strong-attack section (`robust_attacks`) costs most of a synthetic run: AutoAttack's full
    cascade runs on every point the small synthetic models keep, so tests that check something
    else (determinism, resume) pass `("pgd",)`.
    """
    data_dir, checksums = synthetic
    path = folder / "synthetic.toml"
    attacks = ", ".join(f'"{a}"' for a in robust_attacks)
    path.write_text(
        f'name = "synthetic"\nn_train = {n_train}\nn_test = 200\nrobust_attacks = [{attacks}]\n'
        f'data_dir = "{data_dir}"\nchecksums = "{checksums}"\n'
        f'[baseline]\nrecipe = "standard"\nepochs = {epochs[0]}\n'
        f'[defended]\nrecipe = "fgsm-mix"\nepochs = {epochs[1]}\ntrain_eps = "8/255"\n'
    )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium (Debian's, driven by Playwright) per test module; see tests/browser.py."""
    from browser import CHROMIUM_FLAGS, chromium_path

    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def as_nobody() -> list[str]:
    """The command prefix that runs a child as user nobody (setpriv); skips, saying why, where it
    cannot: not root, no setpriv, or this checkout's folders are private (nobody cannot import advmnist)."""
    import shutil

    setpriv = shutil.which("setpriv")
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a child as user nobody")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = [*prefix, sys.executable, "-c", "import advmnist.data"]
    if subprocess.run(probe, capture_output=True, env={"PYTHONPATH": str(ROOT / "src")}, check=False).returncode:
        pytest.skip(f"user nobody cannot run {sys.executable} with advmnist (its folders are private)")
    return prefix
