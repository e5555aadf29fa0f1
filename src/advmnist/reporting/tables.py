"""Text and markdown tables of a run: clean accuracy, the FGSM sweep, training, the seed's numbers,
and, when the run holds them, the strong attacks (PGD, AutoAttack) at the MNIST threat model.

Accuracies are shown as percentages with their 95% interval, `96.95% [96.60, 97.27]`; differences
between models or against the seed are in percentage points (pp).
"""

from __future__ import annotations

from dataclasses import dataclass

from advmnist.reporting.load import MODELS, Accuracy, AttackCurve, RobustResults, RunFiles

# The seed's published table (README "Results Summary"), in percent; keyed by model, then by "clean"
# or eps label. The only place these numbers live.
SEED_PUBLISHED: dict[str, dict[str, float]] = {
    "baseline": {"clean": 99.00, "2/255": 98.68, "4/255": 98.35, "8/255": 96.95},
    "defended": {"clean": 99.13, "2/255": 98.92, "4/255": 98.65, "8/255": 97.85},
}
SEED_SOURCE = "seed README, 'Results Summary' (one run, no intervals)"
# The order AutoAttack runs its members in (standard, then the "plus" extras), for table columns.
CASCADE_ORDER = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
# Registry name -> how prose names it; any other name is upper-cased ("apgd-ce" -> "APGD-CE").
ATTACK_NAMES = {
    "autoattack": "AutoAttack",
    "cascade": "Cascade",
    "square": "Square",
    "mifgsm": "MI-FGSM",
    "deepfool": "DeepFool",
}


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def fmt_acc(acc: Accuracy) -> str:
    """`96.95% [96.60, 97.27]`: the value and its interval, in percent."""
    return f"{100 * acc.value:.2f}% [{100 * acc.ci_low:.2f}, {100 * acc.ci_high:.2f}]"


def fmt_pp(diff: float) -> str:
    """A difference already in percentage points, signed."""
    return f"{diff:+.2f}"


def fmt_eps(eps: object) -> str:
    """A training eps as written by the run: a label ("8/255") stays, a number gets 4 decimals."""
    if eps is None:
        return "-"
    if isinstance(eps, int | float) and not isinstance(eps, bool):
        return f"{eps:.4f}"
    return str(eps)


def fmt_number(value: object, spec: str, unit: str = "") -> str:
    """`value` formatted with `spec`, or "unknown" when a file holds null or a non-number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:{spec}}{unit}"
    return "unknown"


def accuracy_at(run: RunFiles, model: str, key: str) -> Accuracy | None:
    """`key` is "clean" or an eps label."""
    if key == "clean":
        return run.clean(model)
    point = run.point(model, key)
    return point.robust if point else None


def _interval(acc: Accuracy) -> str:
    return f"[a, b]: {100 * acc.confidence:g}% {acc.method} interval"


def _ci_note(run: RunFiles) -> str:
    acc = run.clean("baseline")
    return f"{_interval(acc)} on n = {acc.n} test images."


def clean_table(run: RunFiles) -> Table:
    rows = tuple((m, fmt_acc(run.clean(m)), f"{run.clean(m).correct}/{run.clean(m).n}") for m in MODELS)
    diff = 100 * (run.clean("defended").value - run.clean("baseline").value)
    return Table(
        "Clean test accuracy",
        ("model", "accuracy [95% CI]", "correct/n"),
        rows,
        f"defended - baseline: {fmt_pp(diff)} pp. {_ci_note(run)}",
    )


def fgsm_table(run: RunFiles) -> Table:
    rows = []
    for label in ["clean", *run.eps_labels()]:
        base = accuracy_at(run, "baseline", label)
        defended = accuracy_at(run, "defended", label)
        gain = fmt_pp(100 * (defended.value - base.value)) if base and defended else "n/a"
        rows.append(
            (
                label if label == "clean" else f"eps {label}",
                fmt_acc(base) if base else "n/a",
                fmt_acc(defended) if defended else "n/a",
                gain,
            )
        )
    return Table(
        "FGSM (Linf) robust accuracy",
        ("eps", "baseline", "defended", "improvement (pp)"),
        tuple(rows),
        _ci_note(run),
    )


def training_table(run: RunFiles) -> Table:
    rows = []
    for model in MODELS:
        training = run.training[model]
        history = training["history"]
        train_eps = training.get("train_eps")
        rows.append(
            (
                model,
                str(training.get("recipe", "?")),
                str(training.get("epochs", len(history))),
                fmt_eps(train_eps),
                f"{float(training['training_seconds']):.1f}",
                fmt_acc(run.clean(model)),
            )
        )
    base_s = float(run.training["baseline"]["training_seconds"])
    ratio = float(run.training["defended"]["training_seconds"]) / base_s if base_s > 0 else None
    note = f"defended / baseline training time: {ratio:.2f}x" if ratio is not None else ""
    return Table(
        "Training",
        (
            "model",
            "recipe",
            "epochs",
            "train eps",
            "seconds",
            "final test accuracy [95% CI]",
        ),
        tuple(rows),
        note,
    )


def seed_table(run: RunFiles) -> Table:
    """Our numbers at the seed's eps next to the seed's published ones."""
    rows = []
    for model in MODELS:
        for key, published in SEED_PUBLISHED[model].items():
            ours = accuracy_at(run, model, key)
            what = "clean" if key == "clean" else f"FGSM {key}"
            if ours is None:
                rows.append((model, what, f"{published:.2f}%", "n/a", "n/a", "n/a"))
                continue
            inside = 100 * ours.ci_low <= published <= 100 * ours.ci_high
            diff = fmt_pp(100 * ours.value - published)
            row = (
                model,
                what,
                f"{published:.2f}%",
                fmt_acc(ours),
                diff,
                "yes" if inside else "no",
            )
            rows.append(row)
    return Table(
        "This run vs the seed",
        (
            "model",
            "measure",
            "seed",
            "ours [95% CI]",
            "ours - seed (pp)",
            "seed in our CI",
        ),
        tuple(rows),
        f"seed: {SEED_SOURCE}.",
    )


def all_tables(run: RunFiles) -> list[Table]:
    return [clean_table(run), fgsm_table(run), training_table(run), seed_table(run)]


def attack_name(curve: AttackCurve) -> str:
    """How the report names an attack: "PGD-40", "AutoAttack", "APGD-CE"."""
    if curve.attack == "pgd" and curve.settings.get("steps"):
        return f"PGD-{curve.settings['steps']}"
    return ATTACK_NAMES.get(curve.attack, curve.attack.upper())


def ordinal_every(every: int) -> str:
    """ "every test image", "every 2nd test image", "every 10th test image"."""
    if every == 1:
        return "every test image"
    suffix = "th" if 10 <= every % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(every % 10, "th")
    return f"every {every}{suffix} test image"


def robust_eps_labels(run: RunFiles) -> list[str]:
    """Every eps label of the strong attacks, ordered by eps."""
    eps = {p.eps_label: p.eps for r in run.robust.values() for a in r.attacks for p in a.points}
    return sorted(eps, key=lambda label: eps[label])


def _subset(results: RobustResults) -> str:
    return f"n = {results.n} ({ordinal_every(results.every)})"


def strong_table(run: RunFiles) -> Table:
    """Clean and robust accuracy of each model under FGSM (all its points) and each strong attack."""
    labels = robust_eps_labels(run)
    rows = []
    for model, results in run.robust.items():
        fgsm = [accuracy_at(run, model, label) for label in labels]
        rows.append((model, "FGSM", str(run.clean(model).n), fmt_acc(run.clean(model)), *_cells(fgsm)))
        for curve in results.attacks:
            accs = [p.robust if (p := curve.point(label)) else None for label in labels]
            rows.append((model, attack_name(curve), str(results.n), fmt_acc(results.clean), *_cells(accs)))
    subsets = sorted({_subset(r) for r in run.robust.values()})
    return Table(
        "Strong attacks at the MNIST threat model",
        ("model", "attack", "n", "clean [95% CI]", *(f"eps {label}" for label in labels)),
        tuple(rows),
        f"Strong attacks on {', '.join(subsets)}; FGSM rows: the run's FGSM sweep on all its test images. "
        f"{_interval(run.clean('baseline'))}. Every robust accuracy is an upper bound: an attack can "
        "only show a point is not robust.",
    )


def _cells(accs: list[Accuracy | None]) -> tuple[str, ...]:
    return tuple(fmt_acc(a) if a else "n/a" for a in accs)


def components_table(run: RunFiles) -> Table | None:
    """Which member of a cascade (AutoAttack) broke a point first, per model and eps; None without one."""
    rows, names = [], []
    for model, results in run.robust.items():
        for curve in results.attacks:
            members = {k for counts in curve.broken_by.values() for k in counts} - {curve.attack}
            if not members:
                continue  # not a cascade
            order = [str(a) for a in curve.settings.get("attacks") or ()] + list(CASCADE_ORDER)
            names += [k for k in sorted(members, key=lambda k: ((order + [k]).index(k), k)) if k not in names]
            for point in curve.points:
                counts = curve.broken_by.get(point.eps_label, {})
                rows.append((model, attack_name(curve), point.eps_label, counts, point.robust))
    if not rows:
        return None
    body = tuple(
        (model, attack, f"eps {label}", *(str(counts.get(k, 0)) for k in names), f"{robust.correct}/{robust.n}")
        for model, attack, label, counts, robust in rows
    )
    return Table(
        "Which attack broke the points",
        ("model", "attack", "eps", *names, "still robust"),
        body,
        "Points correctly classified when clean, counted under the first attack of the cascade that fooled "
        "them; each later attack runs only on the points still robust.",
    )


def robust_tables(run: RunFiles) -> list[Table]:
    """The strong-attack tables; none for a run without `<model>_robust_results.json`."""
    if not run.robust:
        return []
    components = components_table(run)
    return [strong_table(run)] + ([components] if components else [])


def render_text(table: Table) -> str:
    """A fixed-width table with a title line, for results_tables.txt and report.txt."""
    cells = [table.headers, *table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.headers))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [table.title, "=" * len(table.title), line(table.headers), rule]
    out += [line(row) for row in table.rows]
    if table.note:
        out.append(table.note)
    return "\n".join(out) + "\n"


def render_markdown(table: Table) -> str:
    head = "| " + " | ".join(table.headers) + " |"
    align = "|" + "|".join([":---"] + ["---:"] * (len(table.headers) - 1)) + "|"
    body = ["| " + " | ".join(row) + " |" for row in table.rows]
    note = f"\n*{table.note}*\n" if table.note else ""
    return f"**{table.title}**\n\n" + "\n".join([head, align, *body]) + "\n" + note


def tables_text(run: RunFiles) -> str:
    """The content of results_tables.txt."""
    header = f"advmnist results: {run.name}\n\n"
    return header + "\n".join(render_text(t) for t in all_tables(run) + robust_tables(run))


def headline_table(run: RunFiles) -> str:
    """A compact table for the end of `advmnist run`: clean and every eps, both models."""
    rows = []
    for label in ["clean", *run.eps_labels()]:
        base = accuracy_at(run, "baseline", label)
        defended = accuracy_at(run, "defended", label)
        rows.append(
            (
                label,
                fmt_acc(base) if base else "n/a",
                fmt_acc(defended) if defended else "n/a",
            )
        )
    table = Table(
        f"{run.name}: FGSM accuracy [95% CI]",
        ("eps", "baseline", "defended"),
        tuple(rows),
    )
    return render_text(table)
