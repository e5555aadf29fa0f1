"""`name[key=value,...]` specs, shared by attack lists and architectures: `pgd[steps=50]`, `seed-cnn[dropout=0]`."""

from __future__ import annotations

from typing import Any


def parse_spec(spec: str, what: str = "setting") -> tuple[str, dict[str, Any]]:
    """`"pgd[steps=50,restarts=10]"` -> `("pgd", {"steps": 50, "restarts": 10})`. Values are read as
    int, float or true/false, `a+b` as a tuple, else kept as strings; ValueError on a malformed spec."""
    name, _, rest = spec.strip().partition("[")
    settings: dict[str, Any] = {}
    if rest:
        if not rest.endswith("]"):
            raise ValueError(f"bad {what} {spec!r}: write name[key=value,...]")
        for item in filter(None, (i.strip() for i in rest[:-1].split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ValueError(f"bad {what} {item!r} in {spec!r}: write key=value")
            settings[key.strip()] = parse_value(value.strip())
    return name.strip(), settings


def parse_value(text: str) -> Any:
    if "+" in text:
        return tuple(parse_value(part) for part in text.split("+"))
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
