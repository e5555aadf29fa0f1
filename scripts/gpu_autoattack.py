"""AutoAttack (standard, Linf 0.3) on all 10,000 test images, for a GPU lent for a few minutes.

On a 2-core CPU the official code needs ~7 hours per robust model; on one GPU it takes minutes. For
each model and each chunk of the test set, in turn: the official code (`pyautoattack`, standard
version, run one attack at a time on the points still standing so that each point records which
attack broke it first), then ours (`autoattack`, fp32 search), then ours with the bf16 search.
Every verdict is one fp32 forward pass (TF32 off). After each chunk the per-sample lines and the
summary are written, so a run stopped at its deadline still leaves everything it finished.

    python scripts/gpu_autoattack.py --out DIR [--data-dir D] [--start I] [--deadline S] NAME=MODEL [NAME=MODEL ...]

Writes DIR/NAME.jsonl (one line per test image: index, label, clean, and each contestant's first
breaker or null) and DIR/summary.json (per model and contestant: robust accuracy with its
Clopper-Pearson interval over the images done and over the every-10th subset among them, seconds,
breakers; the device and versions). A run stopped at its deadline is finished with `--start` into
another folder, and the parts joined with

    python scripts/gpu_autoattack.py merge --out DIR NAME PART_DIR [PART_DIR ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import time
from pathlib import Path

import torch

import advmnist
from advmnist.attacks import AutoAttack, Threat
from advmnist.evaluation.stats import accuracy
from advmnist.io import atomic_write_text, write_json

EPS = 0.3
STAGES = ("apgd-ce", "apgd-t", "fab-t", "square")  # the standard version's order
CONTESTANTS = ("official", "ours fp32", "ours bf16")


def official_stages(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> list[str | None]:
    """The official standard AutoAttack, one attack at a time on the points still standing."""
    from pyautoattack import AutoAttack as Official  # dev-only reference

    broken: list[str | None] = [None] * len(y)
    with torch.no_grad():
        standing = (model(x).argmax(1) == y).nonzero()[:, 0]
    for stage in STAGES:
        if len(standing) == 0:
            break
        attack = Official(model, norm="Linf", eps=EPS, version="standard", seed=seed, device=str(x.device))
        attack.attacks_to_run = [stage]  # keeps the standard version's settings for this attack
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
            x_adv = attack.run_standard_evaluation(x[standing], y[standing], batch_size=len(standing))[0]
        with torch.no_grad():
            fooled = model(x_adv).argmax(1) != y[standing]
        for i in standing[fooled].tolist():
            broken[i] = stage
        standing = standing[~fooled]
    return broken


def ours(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, bf16: bool) -> list[str | None]:
    result = AutoAttack(bf16=bf16)(model, x, y, Threat("linf", EPS), seed=seed)
    with torch.no_grad():  # the verdict: one fp32 forward pass, as for the official code
        fooled = model(result.x_adv).argmax(1) != y
    names = result.broken_by or (None,) * len(y)
    return [(name or "?") if f else None for name, f in zip(names, fooled.tolist(), strict=True)]


def tally(lines: list[dict], contestants: list[str], seconds: dict[str, float]) -> dict:
    """Clean and robust accuracy (all images done, and the every-10th subset among them), first breakers."""
    done = len(lines)
    subset = [line for line in lines if line["index"] % 10 == 0]
    entry: dict = {"done": done, "clean": accuracy(sum(line["clean"] for line in lines), done)}
    for who in contestants:
        breakers: dict[str, int] = {}
        for line in lines:
            if line["clean"] and line[who] is not None:
                breakers[line[who]] = breakers.get(line[who], 0) + 1
        robust = sum(line["clean"] and line[who] is None for line in lines)
        entry[who] = {"robust": accuracy(robust, done), "seconds": seconds[who], "broken_by": breakers}
        if subset:
            robust_subset = sum(line["clean"] and line[who] is None for line in subset)
            entry[who]["robust_every_10th"] = accuracy(robust_subset, len(subset))
    return entry


def _refuse(message: str) -> None:
    """Bad input: one line on stderr, exit code 2, nothing written (the project's rule)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def merge(out: Path, name: str, parts: list[Path]) -> None:
    """One model's runs over disjoint parts of the test set (a stopped run and its finish) as one."""
    lines: list[dict] = []
    runs = []
    for part in parts:
        run = json.loads((part / "summary.json").read_text())
        runs.append({k: v for k, v in run.items() if k != "models"} | {"part": run["models"][name]})
        lines += [json.loads(line) for line in (part / f"{name}.jsonl").read_text().splitlines()]
    if len({run["part"]["sha256"] for run in runs}) != 1:
        _refuse(f"{name}: the parts hold different models")
    indices = [line["index"] for line in lines]
    if len(set(indices)) != len(indices):
        _refuse(f"{name}: the parts overlap")
    lines.sort(key=lambda line: line["index"])
    contestants = [who for who in CONTESTANTS if all(who in run["part"] for run in runs)]
    seconds = {who: sum(run["part"][who]["seconds"] for run in runs) for who in contestants}
    entry = {"model": runs[0]["part"]["model"], "sha256": runs[0]["part"]["sha256"]}
    entry |= tally(lines, contestants, seconds)
    atomic_write_text(out / f"{name}.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    write_json(out / "summary.json", {"eps": EPS, "models": {name: entry}, "runs": runs})


def main() -> None:
    if sys.argv[1:2] == ["merge"]:  # merge --out DIR NAME PART_DIR [PART_DIR ...]
        merger = argparse.ArgumentParser(prog="gpu_autoattack.py merge")
        merger.add_argument("--out", required=True, type=Path)
        merger.add_argument("name")
        merger.add_argument("parts", nargs="+", type=Path)
        margs = merger.parse_args(sys.argv[2:])
        merge(margs.out, margs.name, margs.parts)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="NAME=PATH to a model card or weights")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--start", type=int, default=0, help="first test image (to finish a stopped run)")
    parser.add_argument("--n", type=int, default=10_000, help="test images up to this index")
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--deadline", type=float, default=1e9, help="seconds; no new chunk starts after it")
    parser.add_argument("--contestants", default=",".join(CONTESTANTS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    contestants = args.contestants.split(",")
    if unknown := set(contestants) - set(CONTESTANTS):
        _refuse(f"unknown contestants {sorted(unknown)}; choose from {', '.join(CONTESTANTS)}")
    if bad := [spec for spec in args.models if "=" not in spec]:
        _refuse(f"models are NAME=PATH, got {bad[0]!r}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    test = advmnist.load_mnist("test", data_dir=args.data_dir, n=args.n)
    summary: dict = {
        "eps": EPS,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "tf32": False,
        "chunk": args.chunk,
        "seed": args.seed,
        "models": {},
    }
    start_all = time.perf_counter()
    for spec in args.models:
        name, path = spec.split("=", 1)
        model, card = advmnist.load_model(path)
        model.to(device).eval().requires_grad_(False)
        lines: list[dict] = []
        seconds = dict.fromkeys(contestants, 0.0)
        entry = summary["models"][name] = {"model": path, "sha256": card["sha256"], "start": args.start, "done": 0}
        for lo in range(args.start, len(test.y), args.chunk):
            if time.perf_counter() - start_all > args.deadline:
                entry["stopped"] = "deadline"
                break
            x, y = test.x[lo : lo + args.chunk].to(device), test.y[lo : lo + args.chunk].to(device)
            with torch.no_grad():
                clean = (model(x).argmax(1) == y).tolist()
            verdicts = {}
            for who in list(contestants):
                tick = time.perf_counter()
                try:
                    if who == "official":
                        verdicts[who] = official_stages(model, x, y, args.seed)
                    else:
                        verdicts[who] = ours(model, x, y, args.seed, bf16=who == "ours bf16")
                except Exception as error:  # one contestant failing must not lose the others' minutes
                    summary.setdefault("errors", []).append(f"{name} {who}: {type(error).__name__}: {error}")
                    print(summary["errors"][-1], flush=True)
                    contestants.remove(who)
                    for line in lines:
                        line.pop(who, None)
                    entry.pop(who, None)
                    continue
                if device == "cuda":
                    torch.cuda.synchronize()
                seconds[who] += time.perf_counter() - tick
            for i in range(len(y)):
                lines.append(
                    {"index": lo + i, "label": int(y[i]), "clean": clean[i]}
                    | {who: ("clean" if not clean[i] else verdicts[who][i]) for who in contestants}
                )
            entry.update(tally(lines, contestants, seconds))
            atomic_write_text(args.out / f"{name}.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
            write_json(args.out / "summary.json", summary)
            print(
                name,
                entry["done"],
                {who: round(entry[who]["robust"]["value"], 4) for who in contestants},
                {who: round(s, 1) for who, s in seconds.items()},
                flush=True,
            )


if __name__ == "__main__":
    main()
