"""The API reference has something to say: every public name and every registered attack has a
docstring of its own that says what it does, names each setting that has a default, and (attacks)
cites its paper. `tests/test_docs.py` checks that the reference builds and shows them."""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import pytest

import advmnist
from advmnist.attacks import ATTACKS
from conftest import require

CITATION = re.compile(
    r"\b[A-Z][\w-]+(?: et al\.| (?:&|and) [A-Z][\w-]+)"  # "Madry et al.", "Croce & Hein"
    r",? (?:\(?(?:ICML|ICLR|NeurIPS|NIPS|CVPR|ECCV|S&P|IEEE S&P) )?(?:19|20)\d\d\)?"  # "2018", "ICML 2020"
)
MIN_WORDS = 5  # a summary line shorter than this names the thing instead of saying what it does


def own_docstring(obj: Any) -> str:
    """The docstring written for `obj` itself: not a base class's, not the signature a dataclass makes up."""
    doc = vars(obj).get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not doc:
        return ""
    if isinstance(obj, type) and dataclasses.is_dataclass(obj):
        made_up = obj.__name__ + str(inspect.signature(obj)).replace(" -> None", "")
        if doc == made_up:
            return ""
    return inspect.cleandoc(doc)


def defaults(obj: Any) -> list[str]:
    """The parameters of a function or constructor that have a default (what a user may leave out)."""
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return []
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values() if p.default is not inspect.Parameter.empty]


def field_docstrings(cls: type, *, inherited: bool) -> dict[str, str]:
    """Attribute docstrings (a string right under a field), as pdoc shows them under the class."""
    doc_ast = require("pdoc.doc_ast", "pdoc reads attribute docstrings as the reference shows them")
    found: dict[str, str] = {}
    for base in cls.__mro__ if inherited else (cls,):
        if base is not object:
            for name, doc in doc_ast.walk_tree(base).var_docstrings.items():
                found.setdefault(name, doc)
    return found


def names(doc: str, name: str) -> bool:
    """`name` appears as code in `doc` (`` `steps` ``, `` `steps=50` ``): a mention of the setting, not the word."""
    return any(re.search(rf"\b{re.escape(name)}\b", span) for span in re.findall(r"`([^`]+)`", doc))


def undocumented_defaults(obj: Any) -> list[str]:
    """Parameters with a default that the docstring does not name and no attribute docstring explains.

    A field a class declares itself (a new one, or a base's with a new default, e.g. FGSM's `steps`)
    needs its own words; a field inherited unchanged may rest on the base's attribute docstring.
    """
    doc = own_docstring(obj)
    if not isinstance(obj, type):
        return [name for name in defaults(obj) if not names(doc, name)]
    declared = inspect.get_annotations(obj)
    own, anywhere = field_docstrings(obj, inherited=False), field_docstrings(obj, inherited=True)
    return [
        name for name in defaults(obj) if not names(doc, name) and not (own if name in declared else anywhere).get(name)
    ]


def problems(obj: Any) -> list[str]:
    doc = own_docstring(obj)
    if not doc:
        return ["no docstring of its own"]
    found = []
    summary = doc.split("\n\n")[0]
    if len(summary.split()) < MIN_WORDS:
        found.append(f"summary too short to say what it does: {summary!r}")
    missing = undocumented_defaults(obj)
    if missing:
        found.append(f"settings with a default that the docstring does not name: {', '.join(missing)}")
    return found


PUBLIC = sorted(advmnist.__all__)
ATTACK_CLASSES = sorted({cls.__name__: cls for cls in ATTACKS.values()}.items())


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_says_what_it_does_and_names_its_defaults(name: str) -> None:
    assert problems(getattr(advmnist, name)) == []


@pytest.mark.parametrize(("name", "cls"), ATTACK_CLASSES)
def test_every_registered_attack_cites_its_paper_and_names_its_defaults(name: str, cls: type) -> None:
    assert problems(cls) == []
    assert CITATION.search(own_docstring(cls)), f"{name}: no citation (authors + year) in {own_docstring(cls)!r}"


def test_the_checks_can_fail() -> None:
    """The rules reject what they are meant to reject (a check that cannot fail proves nothing)."""

    def scale(x: float, factor: float = 2.0) -> float:
        """Multiply `x` by a factor, returning the product."""
        return x * factor

    @dataclasses.dataclass(frozen=True)
    class Bare:
        steps: int = 10

    @dataclasses.dataclass(frozen=True)
    class Cited:
        """Projected gradient descent (Madry et al. 2018), `steps` iterations."""

        steps: int = 10
        rel_step_size: float = 0.25
        """Each step's length as a fraction of eps."""

    @dataclasses.dataclass(frozen=True)
    class Longer(Cited):
        """A subclass that walks further, taking more steps."""

        steps: int = 100  # a new default: its own words needed, the base's do not cover it

    assert problems(Longer) == ["settings with a default that the docstring does not name: steps"]
    assert problems(scale) == ["settings with a default that the docstring does not name: factor"]
    assert problems(Bare) == ["no docstring of its own"]
    assert problems(Cited) == []

    def make_all() -> None:
        """Make all."""

    assert problems(make_all) == ["summary too short to say what it does: 'Make all.'"]
    for text in ("Madry et al. 2018", "Croce & Hein, ICML 2020", "(Carlini and Wagner, IEEE S&P 2017)"):
        assert CITATION.search(text), text
    for text in ("PGD 2018", "see the paper", "Madry et al."):
        assert not CITATION.search(text), text
