"""Confidence intervals for accuracies (a binomial proportion: `correct` successes in `n` trials).

Clopper-Pearson is exact: with probability at least `confidence` over the test sample, the
interval contains the true accuracy on the distribution the test set was drawn from. Wilson is
the score interval: shorter, approximately `confidence`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

METHODS = ("clopper-pearson", "wilson")


def _binom_tail_ge(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact enough for n <= 1e6)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    lg = math.lgamma
    terms = [lg(n + 1) - lg(i + 1) - lg(n - i + 1) + i * log_p + (n - i) * log_q for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def _bisect(f: Any, target: float, low: float = 0.0, high: float = 1.0, iters: int = 60) -> float:
    """The p in [low, high] with f(p) == target, for f increasing in p."""
    for _ in range(iters):
        mid = (low + high) / 2
        if f(mid) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def clopper_pearson(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval: each tail has probability at most (1 - confidence) / 2."""
    _check(correct, n, confidence)
    tail = (1 - confidence) / 2
    low = 0.0 if correct == 0 else _bisect(lambda p: _binom_tail_ge(correct, n, p), tail)
    high = 1.0 if correct == n else _bisect(lambda p: _binom_tail_ge(correct + 1, n, p), 1 - tail)
    return low, high


def wilson(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    _check(correct, n, confidence)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _check(correct: int, n: int, confidence: float) -> None:
    if n < 1 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n >= 1, got correct={correct}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


@dataclass(frozen=True)
class Accuracy:
    """A fraction of points with its confidence interval: `value` = `correct` / `n`, in [ci_low, ci_high].

    The interval is two-sided at `confidence` (default 0.95) by `method`: `"clopper-pearson"` (the
    default, exact: never narrower than the truth) or `"wilson"`. Build one with `Accuracy.of`.
    """

    value: float
    correct: int
    n: int
    ci_low: float
    ci_high: float
    method: str = "clopper-pearson"
    confidence: float = 0.95

    @classmethod
    def of(cls, correct: int, n: int, *, method: str = "clopper-pearson", confidence: float = 0.95) -> Accuracy:
        """`correct` of `n` with its `confidence` interval (Clopper-Pearson, exact; or Wilson)."""
        if method not in METHODS:
            raise ValueError(f"unknown CI method {method!r}; choose from {', '.join(METHODS)}")
        low, high = (clopper_pearson if method == "clopper-pearson" else wilson)(int(correct), int(n), confidence)
        return cls(correct / n, int(correct), int(n), low, high, method, confidence)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Accuracy:
        return cls(**{k: obj[k] for k in ("value", "correct", "n", "ci_low", "ci_high", "method", "confidence")})

    def to_json(self) -> dict[str, Any]:
        """The accuracy object of every results file."""
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.2%} [{self.ci_low:.2%}, {self.ci_high:.2%}] (n={self.n})"


def accuracy(correct: int, n: int, *, method: str = "clopper-pearson", confidence: float = 0.95) -> dict[str, Any]:
    """The accuracy object of every results file: value, counts and a confidence interval.

    `correct` of `n` as `Accuracy.of(...).to_json()`: a two-sided `confidence` interval (default
    0.95) by `method` (default `"clopper-pearson"`, exact; or `"wilson"`).
    """
    return Accuracy.of(correct, n, method=method, confidence=confidence).to_json()
