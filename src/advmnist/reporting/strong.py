"""What the strong attacks (PGD, AutoAttack) of a run say, in sentences derived from their files.

The point they make: FGSM is one gradient step, so its robust accuracy only bounds the truth from
above; a multi-step attack and AutoAttack's cascade find the points FGSM missed. Every sentence
names the numbers it rests on, and a statement flips when the numbers do.
"""

from __future__ import annotations

from advmnist.reporting.load import Accuracy, AttackCurve, RunFiles
from advmnist.reporting.tables import attack_name, fmt_acc, fmt_pp, ordinal_every, robust_eps_labels

MNIST_EPS = "0.3"  # the standard MNIST Linf budget (Madry et al. 2018)


def strong_heading(run: RunFiles) -> str:
    """ "Strong attacks (PGD-40, AutoAttack)": the attacks the run's robust files hold."""
    names = dict.fromkeys(attack_name(a) for r in run.robust.values() for a in r.attacks)
    return f"Strong attacks ({', '.join(names)})"


def _strongest(run: RunFiles, model: str, label: str) -> tuple[AttackCurve, Accuracy] | None:
    """The attack with the lowest robust accuracy at `label` (the later one on a tie: AutoAttack)."""
    found = [(a, p.robust) for a in run.robust[model].attacks if (p := a.point(label))]
    return min(reversed(found), key=lambda f: f[1].value) if found else None


def _focus_eps(run: RunFiles) -> str:
    labels = robust_eps_labels(run)
    return MNIST_EPS if MNIST_EPS in labels else labels[-1]


def _intro(run: RunFiles) -> str:
    parts = []
    for curve in next(iter(run.robust.values())).attacks:
        name = attack_name(curve)
        if curve.attack == "pgd":
            steps = curve.settings.get("steps", "many")
            parts.append(f"{name} takes {steps} projected gradient steps from a random start")
        elif any(set(c) - {curve.attack} for c in curve.broken_by.values()):
            parts.append(f"{name} runs a cascade of attacks, each on the points the ones before could not break")
    subsets = sorted({f"n = {r.n} test images ({ordinal_every(r.every)})" for r in run.robust.values()})
    return (
        "FGSM takes a single gradient step. "
        + "".join(f"{p[0].upper()}{p[1:]}. " for p in parts)
        + f"The strong attacks ran on {' and '.join(subsets)} per model, so their intervals are "
        f"wider than FGSM's on all {run.clean('baseline').n}."
    )


def _versus_fgsm(run: RunFiles, model: str, label: str) -> str | None:
    strongest = _strongest(run, model, label)
    if strongest is None:
        return None
    curve, acc = strongest
    head = f"Under {attack_name(curve)} at eps {label} the {model} model keeps {fmt_acc(acc)}"
    fgsm = run.point(model, label)
    if fgsm is None:
        return f"{head}; FGSM was not run at eps {label}."
    said = f"{head}; FGSM said {fmt_acc(fgsm.robust)}"
    gap = f"{100 * (fgsm.robust.value - acc.value):.2f}"
    if fgsm.robust.ci_low > acc.ci_high:
        return f"{said}: FGSM overstates its robustness by {gap} pp, and the intervals do not overlap."
    if fgsm.robust.value > acc.value:
        return f"{said}: {gap} pp lower, but the intervals overlap, so this run cannot tell the two apart."
    return f"{said}: no lower than FGSM, so FGSM did not overstate this model at eps {label}."


def _largest_gap(run: RunFiles, model: str, focus: str) -> str | None:
    """The eps where the strongest attack falls furthest below FGSM, when that is not `focus`."""
    gaps = []
    for label in robust_eps_labels(run):
        strongest, fgsm = _strongest(run, model, label), run.point(model, label)
        if strongest and fgsm:
            gaps.append((fgsm.robust.value - strongest[1].value, label, strongest, fgsm.robust))
    if not gaps:
        return None
    gap, label, (curve, acc), fgsm_acc = max(gaps, key=lambda g: g[0])
    if label == focus or gap <= 0:
        return None
    return (
        f"The {model} model's gap is largest at eps {label}: FGSM {fmt_acc(fgsm_acc)}, "
        f"{attack_name(curve)} {fmt_acc(acc)} ({fmt_pp(-100 * gap)} pp)."
    )


def _defended_verdict(run: RunFiles, train_eps: str) -> str:
    strongest = _strongest(run, "defended", MNIST_EPS) if "defended" in run.robust else None
    if strongest is None:
        return (
            f"The strong attacks of this run did not reach the defended model at eps {MNIST_EPS}, so whether "
            "it holds at the MNIST budget is not measured."
        )
    curve, acc = strongest
    name = attack_name(curve)
    if acc.value < 0.5:
        return (
            f"The FGSM-trained model does not hold at the MNIST budget: at eps {MNIST_EPS} it keeps "
            f"{fmt_acc(acc)} under {name}, below 50%. FGSM training at eps {train_eps} does not buy "
            f"robustness at {MNIST_EPS}."
        )
    return (
        f"The FGSM-trained model keeps {fmt_acc(acc)} at eps {MNIST_EPS} even under {name}, the strongest "
        "attack run here: it holds against these attacks, which is still an upper bound, not a guarantee."
    )


def _flagged(run: RunFiles) -> str | None:
    names = [f"{m}: {c.get('name')}" for m, r in run.robust.items() for c in r.checks if not c.get("passed")]
    if not names:
        return None
    return (
        f"Warning: {len(names)} sanity check(s) of the strong attacks flagged a problem ({'; '.join(names)}); "
        "see 'Sanity checks'. Until they pass, these numbers may overstate robustness."
    )


def strong_paragraphs(run: RunFiles, train_eps: str) -> list[str]:
    """The prose of the strong-attack section; `train_eps` is the defended model's training eps."""
    focus = _focus_eps(run)
    paras = [_intro(run)]
    for model in run.robust:
        paras += [s for s in (_versus_fgsm(run, model, focus), _largest_gap(run, model, focus)) if s]
    paras.append(_defended_verdict(run, train_eps))
    paras += [s for s in (_flagged(run),) if s]
    paras.append(
        "Every number here is still an upper bound on the true robust accuracy: an attack can only show "
        "that a point is not robust, never that it is."
    )
    return paras
