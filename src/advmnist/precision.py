"""Whether bf16 autocast pays on a device, and the one switch that overrides the answer.

bf16 autocast is ~2.5x faster than fp32 on a CPU with native bf16 instructions (AVX512-BF16 or
AMX, e.g. Intel Xeon since Cooper Lake, AMD Zen 4) and on a GPU with bf16; on a CPU without them
PyTorch emulates bf16 and is ~8x *slower* than fp32 (measured: seed-CNN forward + backward on 256
images, AMD EPYC with AVX2 only, 0.40 s fp32 vs 3.45 s bf16). So a request for bf16 (`bf16=True`,
`precision = "bf16"`, `--bf16`) is honoured where it pays and runs in fp32 elsewhere, with one log
line. `ADVMNIST_BF16=on` forces bf16 anyway (to reproduce a bf16 run bit for bit), `off` never
uses it, `auto` (the default) decides per device.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch

from advmnist.errors import UsageError

ENV = "ADVMNIST_BF16"
MODES = ("auto", "on", "off")
log = logging.getLogger(__name__)


def mode() -> str:
    """The value of ADVMNIST_BF16 (default `auto`); anything else is a usage error."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise UsageError(f"{ENV} must be one of {', '.join(MODES)}, got {value!r}")
    return value


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """True where bf16 arithmetic is native: a CUDA device with bf16, a CPU with AVX512-BF16 or AMX."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    return False


def use_bf16(requested: bool, device: torch.device | str = "cpu") -> bool:
    """Whether a computation that asks for bf16 (`requested`) runs under bf16 autocast on `device`."""
    if not requested:
        return False
    chosen = mode()
    if chosen != "auto":
        return chosen == "on"
    native = native_bf16(device)
    if not native:
        _say_fp32(torch.device(device).type)
    return native


@functools.cache
def _say_fp32(device_type: str) -> None:
    log.warning(
        "bf16 asked for, but this %s has no native bf16 (emulated bf16 is ~8x slower than fp32 here): "
        "running in fp32; %s=on forces bf16",
        device_type.upper(),
        ENV,
    )


def describe(device: torch.device | str = "cpu") -> dict[str, object]:
    """For manifests: whether bf16 is native on `device` and the switch's value."""
    try:
        native = native_bf16(device)
    except (RuntimeError, ValueError):  # a device string torch does not know
        native = False
    return {"native": native, "mode": mode()}  # the normalized switch, as use_bf16 reads it
