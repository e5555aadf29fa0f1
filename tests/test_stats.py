from __future__ import annotations

import pytest
from scipy.stats import beta

from advmnist.evaluation import accuracy, clopper_pearson, eps_label, parse_eps, parse_eps_list, wilson


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (9695, 10000), (9999, 10000), (3, 1000)])
def test_clopper_pearson_matches_the_beta_quantiles(k: int, n: int) -> None:
    low, high = clopper_pearson(k, n, 0.95)
    expected_low = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    expected_high = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    assert low == pytest.approx(expected_low, abs=1e-9)
    assert high == pytest.approx(expected_high, abs=1e-9)


def test_wilson_known_value_and_ordering() -> None:
    low, high = wilson(9695, 10000)
    assert (low, high) == pytest.approx((0.965945, 0.972694), abs=1e-6)
    cp = clopper_pearson(9695, 10000)
    assert cp[0] <= low and high <= cp[1]  # the exact interval is the more conservative one here


def test_accuracy_object() -> None:
    acc = accuracy(9900, 10000)
    assert acc["value"] == 0.99 and acc["correct"] == 9900 and acc["n"] == 10000
    assert acc["ci_low"] < 0.99 < acc["ci_high"] and acc["method"] == "clopper-pearson"
    with pytest.raises(ValueError, match="correct <= n"):
        accuracy(11, 10)
    with pytest.raises(ValueError, match="unknown CI method"):
        accuracy(1, 2, method="bootstrap")


def test_parse_eps() -> None:
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps(" 0.3 ") == 0.3
    assert parse_eps_list("2/255,0.1") == [("2/255", pytest.approx(2 / 255)), ("0.1", 0.1)]
    for bad, message in [("abc", "cannot parse"), ("1/0", "cannot parse"), ("-0.1", ">= 0"), ("inf", "finite")]:
        with pytest.raises(ValueError, match=message):
            parse_eps(bad)
    with pytest.raises(ValueError, match="above 1"):
        parse_eps_list("0.1,1.5")
    with pytest.raises(ValueError, match="empty eps"):
        parse_eps_list("0.1,,0.2")


def test_eps_label() -> None:
    assert eps_label(8 / 255) == "8/255" and eps_label(0.3) == "0.3"
