"""Output folders: refuse to clobber a run, refuse to resume into another configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from advmnist.errors import RunDirError
from advmnist.io import read_json

RUN_MARKER = "config.json"


def prepare_run_dir(out: str | Path, config: dict[str, Any], *, overwrite: bool, resume: bool) -> bool:
    """Check `out` may receive this run; return True when resuming an earlier run there.

    - new or empty folder: fine;
    - a folder holding a run: resume it if `resume` and its config matches, else refuse unless
      `overwrite` (then our own files are replaced; nothing else in the folder is touched);
    - a non-empty folder holding no run: refuse unless `overwrite`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return False
    marker = out / RUN_MARKER
    if marker.is_file() and resume:
        try:
            old = read_json(marker)
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{marker}: unreadable ({exc}); cannot resume") from None
        config = json.loads(json.dumps(config))  # as written: tuples are lists in the file
        if old != config:
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise RunDirError(f"{out}: holds a run with another configuration ({', '.join(diff)}); refusing to mix")
        return True
    if overwrite:
        return False
    what = "holds a run" if marker.is_file() else "is not empty"
    hint = "--resume to continue it or " if marker.is_file() else ""
    raise RunDirError(f"{out}: {what}; use {hint}--overwrite, or choose another --out")
