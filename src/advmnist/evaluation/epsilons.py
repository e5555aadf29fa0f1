"""Perturbation budgets as people write them: `8/255`, `0.3`, `2/255,4/255,8/255`."""

from __future__ import annotations

import math
from fractions import Fraction


def parse_eps(text: str) -> float:
    """`"8/255"` -> 0.03137..., `"0.3"` -> 0.3; raises ValueError naming the bad value."""
    raw = text.strip()
    try:
        value = float(Fraction(raw)) if "/" in raw else float(raw)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"cannot parse eps {text!r} (use a decimal like 0.3 or a fraction like 8/255)") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {text!r}")
    return value


def parse_eps_list(text: str, *, max_eps: float | None = 1.0) -> list[tuple[str, float]]:
    """Comma-separated budgets -> [(label, value)], labels as written; checks `value <= max_eps`."""
    out = []
    for part in text.split(","):
        if not part.strip():
            raise ValueError(f"empty eps in {text!r}")
        value = parse_eps(part)
        if max_eps is not None and value > max_eps:
            raise ValueError(f"eps {part.strip()!r} = {value:.4g} is above {max_eps} (images live in [0, 1])")
        out.append((part.strip(), value))
    return out


def eps_label(value: float) -> str:
    """A readable label: `k/255` when the value is one, else the shortest decimal."""
    k = value * 255
    if abs(k - round(k)) < 1e-9 and value < 0.1:
        return f"{round(k)}/255"
    return f"{value:g}"
