"""Several models side by side (recipes, architectures): tables, one plot, a report with sentences.

`advmnist compare` writes `comparison.json`: one row per model (what it is, what it cost) that
points at the model's evaluation files (`eval_results.json`, FGSM + PGD on one subset, AutoAttack
on another). Everything here reads those files only (no torch), so `advmnist report` rebuilds the
report from a comparison folder the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from advmnist.errors import RunDirError
from advmnist.io import read_json
from advmnist.reporting.blocks import Block, write_reports
from advmnist.reporting.curves import GROUP_COLORS, MNIST_LINF, eps_tick
from advmnist.reporting.legible import MAX_WIDTH_IN, SMALLEST_PT, eps_priority, fitting_tick_labels
from advmnist.reporting.load import Accuracy, AttackCurve, RobustResults, load_robust
from advmnist.reporting.plots import DPI, _figure, _save
from advmnist.reporting.tables import Table, attack_name, fmt_acc, ordinal_every

COMPARISON = "comparison.json"
PLOT = "comparison.png"
SCHEMA = 1


@dataclass(frozen=True)
class Row:
    """One compared model: its card's facts, its costs, and its evaluations."""

    name: str
    model: str
    arch: str
    params: int
    recipe: str
    train_eps: float | None
    epochs: int | None
    train_seconds: float | None
    inference_us: float  # fp32 forward per image, batch 256, measured in the comparing process
    results: tuple[RobustResults, ...]

    @property
    def clean(self) -> Accuracy:
        """The clean accuracy on the largest of the evaluated subsets."""
        return max(self.results, key=lambda r: r.clean.n).clean

    def curves(self) -> list[tuple[RobustResults, AttackCurve]]:
        return [(r, c) for r in self.results for c in r.attacks]

    def clean_for(self, attack: str) -> Accuracy:
        """The clean accuracy on the subset `attack` ran on."""
        return next((r.clean for r, c in self.curves() if attack_name(c) == attack), self.clean)

    def at(self, attack: str, label: str) -> Accuracy | None:
        for _, curve in self.curves():
            point = curve.point(label)
            if attack_name(curve) == attack and point is not None:
                return point.robust
        return None


@dataclass(frozen=True)
class Comparison:
    folder: Path
    title: str
    eps: tuple[str, ...]
    rows: tuple[Row, ...]
    command: str

    def attacks(self) -> list[str]:
        """The attacks' display names in the order they were run ("FGSM", "PGD-50", "AutoAttack")."""
        return list(dict.fromkeys(attack_name(c) for row in self.rows for _, c in row.curves()))


def load_comparison(folder: str | Path) -> Comparison:
    """Read `comparison.json` and every evaluation it names; `RunDirError` names a bad file."""
    folder = Path(folder)
    path = folder / COMPARISON
    if not path.is_file():
        raise RunDirError(f"{folder}: no {COMPARISON} (not a comparison folder)")
    try:
        obj = read_json(path)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc})") from None
    if not isinstance(obj, dict) or obj.get("schema_version") != SCHEMA or not isinstance(obj.get("models"), list):
        raise RunDirError(f"{path}: not a comparison file of schema_version {SCHEMA}")
    rows = []
    for i, m in enumerate(obj["models"]):
        where = f"{path}: models[{i}]"
        try:
            results = tuple(load_robust(folder / f, f"{folder / f}") for f in m["evaluations"])
            rows.append(
                Row(
                    name=str(m["name"]),
                    model=str(m["model"]),
                    arch=str(m["arch"]),
                    params=int(m["params"]),
                    recipe=str(m["recipe"]),
                    train_eps=m.get("train_eps"),
                    epochs=m.get("epochs"),
                    train_seconds=m.get("train_seconds"),
                    inference_us=float(m["inference_us_per_image"]),
                    results=results,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RunDirError(f"{where}: malformed ({exc!r})") from None
    if not rows:
        raise RunDirError(f"{path}: no models")
    return Comparison(
        folder, str(obj.get("title", "Comparison")), tuple(obj["eps"]), tuple(rows), obj.get("command", "")
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _recipe(row: Row) -> str:
    if row.recipe in ("standard", "unknown") or row.train_eps is None:
        return row.recipe
    return f"{row.recipe} (eps {row.train_eps:g})"


def models_table(comp: Comparison) -> Table:
    fastest = min(r.inference_us for r in comp.rows)
    rows = tuple(
        (
            r.name,
            r.arch,
            f"{r.params:,}",
            _recipe(r),
            str(r.epochs) if r.epochs is not None else "?",
            _duration(r.train_seconds),
            f"{r.inference_us:.3g} ({r.inference_us / fastest:.1f}x)",
            fmt_acc(r.clean),
        )
        for r in comp.rows
    )
    n = comp.rows[0].clean.n
    return Table(
        "Models: what they are and what they cost",
        ("model", "arch", "params", "recipe", "epochs", "training", "inference us/img", "clean [95% CI]"),
        rows,
        "Training time as recorded by the run (2-core CPU unless its card says otherwise). Inference: fp32 "
        "forward, batch 256, best of 5, measured in one process for all rows, so the ratios compare. Clean "
        f"accuracy on the larger evaluated subset (n = {n}).",
    )


def _subsets(comp: Comparison) -> str:
    seen: dict[str, tuple[int, int]] = {}
    for row in comp.rows:
        for results, curve in row.curves():
            seen.setdefault(attack_name(curve), (results.clean.n, results.every))
    return "; ".join(f"{a}: n = {n} ({ordinal_every(every)})" for a, (n, every) in seen.items())


def robust_tables(comp: Comparison) -> list[Table]:
    """One table per eps: rows are models, columns the attacks, cells accuracy [95% CI]."""
    attacks = comp.attacks()
    tables = []
    for label in comp.eps:
        rows = tuple(
            (r.name, *(fmt_acc(a) if (a := r.at(name, label)) else "-" for name in attacks)) for r in comp.rows
        )
        tables.append(
            Table(
                f"Robust accuracy at Linf eps {label} [95% CI]",
                ("model", *attacks),
                rows,
                f"Test images per attack: {_subsets(comp)}. Clopper-Pearson intervals.",
            )
        )
    return tables


def _strongest(row: Row, label: str) -> tuple[str, Accuracy] | None:
    """The attack with the lowest accuracy at `label` (the later one on a tie: AutoAttack)."""
    names = list(dict.fromkeys(attack_name(c) for _, c in row.curves()))
    found = [(name, a) for name in reversed(names) if (a := row.at(name, label))]
    return min(found, key=lambda f: f[1].value) if found else None


def _ranking(comp: Comparison, label: str) -> str | None:
    ranked = sorted(((s[1], s[0], r) for r in comp.rows if (s := _strongest(r, label))), key=lambda t: -t[0].value)
    if not ranked:
        return None
    acc, attack, best = ranked[0]
    said = (
        f"At eps {label}, under the strongest attack run on each, {best.name} keeps the most: {fmt_acc(acc)} ({attack})"
    )
    if len(ranked) > 1:
        acc2, attack2, second = ranked[1]
        if acc2.value == acc.value:
            tie = "a tie"
        elif acc2.ci_high >= acc.ci_low:
            tie = "the intervals overlap, so these points cannot separate the two"
        else:
            tie = "the intervals do not overlap"
        said += f"; next is {second.name} with {fmt_acc(acc2)} ({attack2}): {tie}"
    return said + "."


def _fgsm_overstates(comp: Comparison, row: Row) -> str | None:
    """The eps where FGSM is furthest above the strongest attack, when the intervals separate them."""
    gaps = []
    for label in comp.eps:
        fgsm, strong = row.at("FGSM", label), _strongest(row, label)
        if fgsm and strong and strong[0] != "FGSM" and fgsm.ci_low > strong[1].ci_high:
            gaps.append((fgsm.value - strong[1].value, label, fgsm, strong))
    if not gaps or max(gaps, key=lambda g: g[0])[0] < 0.05:
        return None
    gap, label, fgsm, (name, acc) = max(gaps, key=lambda g: g[0])
    return (
        f"FGSM overstates {row.name} by {100 * gap:.1f} pp at eps {label} (FGSM {fmt_acc(fgsm)}, {name} "
        f"{fmt_acc(acc)}): for it a one-step attack is no evidence of robustness."
    )


def _costs(comp: Comparison) -> str | None:
    timed = [r for r in comp.rows if r.train_seconds]
    if len(timed) < 2:
        return None
    cheap = min(timed, key=lambda r: r.train_seconds or 0.0)
    dear = max(timed, key=lambda r: r.train_seconds or 0.0)
    ratio = (dear.train_seconds or 0.0) / (cheap.train_seconds or 1.0)
    return (
        f"Training took from {_duration(cheap.train_seconds)} ({cheap.name}) to {_duration(dear.train_seconds)} "
        f"({dear.name}), {ratio:.0f}x as long."
    )


def _flags(comp: Comparison) -> str:
    flagged = [
        f"{r.name}: {c.get('name')} ({c.get('measured')})"
        for r in comp.rows
        for res in r.results
        for c in res.checks
        if not c.get("passed")
    ]
    if not flagged:
        return "Every sanity check of every evaluation passed."
    return (
        f"Sanity checks flagged {len(flagged)} problem(s); the numbers concerned may overstate robustness: "
        + "; ".join(flagged)
        + "."
    )


def comparison_sentences(comp: Comparison) -> list[str]:
    """What the tables say, each sentence naming its numbers; they change when the numbers do."""
    largest = max(comp.eps, key=lambda e: float(Fraction(e)))
    out = [s for s in (_ranking(comp, largest),) if s]
    out += [s for row in comp.rows if (s := _fgsm_overstates(comp, row))]
    out += [s for s in (_costs(comp), _flags(comp)) if s]
    out.append(
        "Every robust accuracy here is an upper bound: an attack can show that a point is not robust, never that it is."
    )
    return out


def plot_comparison(comp: Comparison, path: Path) -> Path:
    """One panel per attack: accuracy vs eps (eps 0 = clean), one line per model, 95% interval bars."""
    attacks = comp.attacks()
    fig = _figure((min(MAX_WIDTH_IN, 3.6 * len(attacks) + 2.6), 4.4))  # legible on the page
    axes = np.atleast_1d(fig.subplots(1, len(attacks), sharey=True))
    lowest = 100.0
    fits = []
    for ax, attack in zip(axes, attacks, strict=True):
        for i, row in enumerate(comp.rows):
            points = [(0.0, row.clean_for(attack))] + [
                (float(Fraction(e)), a) for e in comp.eps if (a := row.at(attack, e)) is not None
            ]
            eps = np.array([p[0] for p in points])
            acc = np.array([[a.value, a.ci_low, a.ci_high] for _, a in points]) * 100  # (P, 3)
            yerr = [acc[:, 0] - acc[:, 1], acc[:, 2] - acc[:, 0]]
            lowest = min(lowest, float(acc[:, 1].min()))
            color = GROUP_COLORS[i % len(GROUP_COLORS)]
            ax.errorbar(
                eps + 0.002 * (i - len(comp.rows) / 2),
                acc[:, 0],
                yerr=yerr,
                color=color,
                marker="o",
                markersize=3,
                capsize=2,
                linewidth=1.2,
                label=row.name,
            )
        ticks = [0.0, *(float(Fraction(e)) for e in comp.eps)]
        labels = [eps_tick(t) for t in ticks]
        ax.set_xticks(ticks, labels)
        fits.append((ax, (ticks, labels, eps_priority(ticks, [0.0, MNIST_LINF, ticks[-1]]))))
        if any(abs(t - MNIST_LINF) < 1e-9 for t in ticks):
            ax.axvline(MNIST_LINF, color="black", linestyle=":", linewidth=0.8)
        ax.set_title(attack)
        ax.set_xlabel("eps (Linf)")
        ax.grid(alpha=0.3)
    axes[0].set_ylim(max(0.0, 10 * (lowest // 10) - 10), 101)  # zoom in when every model holds up
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(
        fontsize=SMALLEST_PT,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        title="bars: 95% CI",
        title_fontsize=SMALLEST_PT,
    )
    fig.suptitle(comp.title)
    for ax, fit in fits:
        fitting_tick_labels(ax, *fit)
    return _save(fig, path, DPI)


def comparison_blocks(comp: Comparison) -> list[Block]:
    blocks = [Block("h1", comp.title), Block("table", models_table(comp))]
    blocks += [Block("table", t) for t in robust_tables(comp)]
    blocks += [Block("p", s) for s in comparison_sentences(comp)]
    blocks.append(Block("plot", (PLOT, "Accuracy vs eps per attack; eps 0 is clean accuracy.")))
    if comp.command:
        blocks += [Block("h2", "Reproduce"), Block("code", comp.command)]
    return blocks


def build_comparison_report(folder: str | Path, *, as_html: bool = False) -> list[Path]:
    """Write comparison.png, report.md and report.txt (and report.html) into a comparison folder."""
    comp = load_comparison(folder)  # everything is read and checked before the first write
    return [
        plot_comparison(comp, comp.folder / PLOT),
        *write_reports(comparison_blocks(comp), comp.folder, plot_dir="", as_html=as_html),
    ]
