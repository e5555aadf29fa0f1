"""What a run was made with: versions, git sha, machine, data checksums, timings, peak memory."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advmnist import precision

SCHEMA_VERSION = 1


def package_version() -> str:
    try:
        return metadata.version("advmnist")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def git_sha() -> str | None:
    """The commit of the advmnist source tree, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def make_manifest(seed: int, device: str, data_sha256: dict[str, str], command: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "advmnist_version": package_version(),
        "seed": seed,
        "command": command,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "bf16": precision.describe(device),
        "device": device,
        "git_sha": git_sha(),
        "data_sha256": data_sha256,
        "started": now(),
        "finished": None,
        "timings": {},
        "total_seconds": None,
        "peak_rss_mb": None,
    }
