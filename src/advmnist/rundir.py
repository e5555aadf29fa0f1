"""One run, one context: the lifecycle of an output folder, shared by every command that writes one.

    check inputs (the caller)  ->  decide: new run, resume, or refuse  ->  create the folder
    ->  lock it  ->  decide again under the lock  ->  config.json  ->  manifest (started)
    ->  the command's work  ->  manifest (finished, seconds, peak memory)

A command validates everything it was given (options, data, the model's first forward pass)
before it opens its run, so a failed start creates nothing. A run folder holds one configuration:
`resume` continues it only when the configuration is the same, `overwrite` replaces the files the
command writes (never others). One process at a time: a second writer is refused and told which
process holds the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advmnist.errors import OutputError, RunDirError, os_cause
from advmnist.io import make_dirs, read_json, write_json
from advmnist.lock import FolderLock
from advmnist.manifest import make_manifest, now, peak_rss_mb

RUN_MARKER = "config.json"
MANIFEST = "manifest.json"
_IGNORED = {FolderLock.NAME}  # files that do not make a folder "hold something"


def _entries(out: Path) -> list[Path]:
    try:
        return [p for p in out.iterdir() if p.name not in _IGNORED]
    except OSError as exc:
        raise OutputError(f"{out}: cannot read the folder ({os_cause(exc)})") from exc


def _as_written(config: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(config, allow_nan=False))  # tuples are lists in the file
    return loaded


def prepare_run_dir(
    out: str | Path, config: dict[str, Any], *, overwrite: bool, resume: bool, resumable: bool = True
) -> bool:
    """Decide whether `out` may receive this run, without changing anything; True when resuming.

    - no folder, or an empty one: a new run;
    - a folder holding a run: resume it if `resume` and its config matches, else refuse unless
      `overwrite` (then the command's own files are replaced; nothing else in the folder is touched);
    - a non-empty folder holding no run: refuse unless `overwrite`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a folder")
    if not out.exists() or not _entries(out):
        return False
    marker = out / RUN_MARKER
    if marker.is_file() and resume:
        try:
            old = read_json(marker)
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{marker}: unreadable ({exc}); cannot resume") from None
        config = _as_written(config)
        if old != config:
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise RunDirError(f"{out}: holds a run with another configuration ({', '.join(diff)}); refusing to mix")
        return True
    if overwrite:
        return False
    what = "holds a run" if marker.is_file() and resumable else "is not empty"
    hint = "--resume to continue it or " if marker.is_file() and resumable else ""
    raise RunDirError(f"{out}: {what}; use {hint}--overwrite, or choose another --out")


def config_sha256(config: dict[str, Any]) -> str:
    """The fingerprint of a run's configuration (canonical JSON), recorded in its manifest."""
    text = json.dumps(_as_written(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Run:
    """An open run folder: where the work writes, whether it resumes, and its manifest.

    `timings` (name -> seconds) and `extra` (more manifest fields) may be filled by the work; the
    manifest is written when the run opens and again when it closes without an error.
    """

    path: Path
    config: dict[str, Any]
    resuming: bool
    manifest: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)
    seconds_before: float = 0.0

    @property
    def timings(self) -> dict[str, float]:
        timings: dict[str, float] = self.manifest["timings"]
        return timings

    def save_manifest(self, *, finished: bool = False) -> None:
        """Write manifest.json now (a killed run keeps the timings of its finished stages)."""
        if finished:
            self.manifest["total_seconds"] = self.seconds_before + time.perf_counter() - self.started
            self.manifest.update(finished=now(), peak_rss_mb=peak_rss_mb())
        write_json(self.path / MANIFEST, self.manifest)


@dataclass(frozen=True)
class RunSpec:
    """What a command asks of its output folder."""

    out: Path
    config: dict[str, Any]
    overwrite: bool = False
    resume: bool = False
    seed: int = 0
    device: str = "cpu"
    command: str = ""
    data_sha256: dict[str, str] = field(default_factory=dict)
    owned: Sequence[str] = ()  # append-only files the command writes: dropped when a run starts afresh
    resumable: bool = True  # whether the command can continue a killed run (--resume)

    def decide(self) -> bool:
        """True when this run resumes the one in `out`; a `RunDirError` when it may not go there."""
        return prepare_run_dir(
            self.out, self.config, overwrite=self.overwrite, resume=self.resume, resumable=self.resumable
        )


@contextlib.contextmanager
def open_run(spec: RunSpec) -> Iterator[Run]:
    """The run context every command goes through (see the module docstring).

    Inside the block the folder exists, is locked by this process, holds `config.json`, and a
    manifest marked started; on a normal exit the manifest is marked finished.
    """
    out = Path(spec.out)
    spec.decide()  # refuse before creating anything
    created = not out.exists()
    make_dirs(out)
    lock: FolderLock | None = None
    try:
        lock = FolderLock(out).acquire()
        run = _start(out, spec)
    except BaseException:
        if lock is not None:
            lock.release()
        if created:  # a failed start leaves nothing behind
            _remove_created(out)
        raise
    try:
        yield run
        run.save_manifest(finished=True)
    finally:
        lock.release()


def _start(out: Path, spec: RunSpec) -> Run:
    """Under the lock: decide again (another process may have written meanwhile), then mark the run."""
    resuming = spec.decide()
    manifest = make_manifest(spec.seed, spec.device, spec.data_sha256, spec.command)
    manifest["config_sha256"] = config_sha256(spec.config)
    run = Run(out, spec.config, resuming, manifest)
    old = out / MANIFEST
    if resuming and old.is_file():
        previous = read_json(old)
        manifest["timings"] = previous.get("timings", {})
        manifest["started"] = previous.get("started", manifest["started"])
        manifest["resumed"] = previous.get("resumed", 0) + 1
        run.seconds_before = previous.get("total_seconds") or 0.0
    if not resuming:
        for name in spec.owned:
            (out / name).unlink(missing_ok=True)
        write_json(out / RUN_MARKER, spec.config)
    run.save_manifest()
    return run


def _remove_created(out: Path) -> None:
    """Undo a failed start in a folder this run created: its marker files, then the folder if empty."""
    with contextlib.suppress(OSError):
        for name in (FolderLock.NAME, RUN_MARKER, MANIFEST):
            (out / name).unlink(missing_ok=True)
        out.rmdir()
