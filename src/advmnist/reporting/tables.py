"""Text and markdown tables of a run: clean accuracy, the FGSM sweep, training, and the seed's numbers.

Accuracies are shown as percentages with their 95% interval, `96.95% [96.60, 97.27]`; differences
between models or against the seed are in percentage points (pp).
"""

from __future__ import annotations

from dataclasses import dataclass

from advmnist.reporting.load import MODELS, Accuracy, RunFiles

# The seed's published table (README "Results Summary"), in percent; keyed by model, then by "clean"
# or eps label. The only place these numbers live.
SEED_PUBLISHED: dict[str, dict[str, float]] = {
    "baseline": {"clean": 99.00, "2/255": 98.68, "4/255": 98.35, "8/255": 96.95},
    "defended": {"clean": 99.13, "2/255": 98.92, "4/255": 98.65, "8/255": 97.85},
}
SEED_SOURCE = "seed README, 'Results Summary' (one run, no intervals)"


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


def _ci_note(run: RunFiles) -> str:
    acc = run.clean("baseline")
    level = f"{100 * acc.confidence:g}%"
    return f"[a, b]: {level} {acc.method} interval on n = {acc.n} test images."


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
    return header + "\n".join(render_text(t) for t in all_tables(run))


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
