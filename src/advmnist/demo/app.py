"""`advmnist demo`: draw, upload or pick a digit, attack it on one or more models, see what changed.

A thin Gradio 6 layout over `engine` (the attacks, the figure) and `preprocess` (the MNIST way,
upload limits). Nothing leaves the machine: analytics are off and the server binds 127.0.0.1
unless `--host` says otherwise. Every error the user can cause is shown as one line beside the
attack button. The input the user touched last (drawn, uploaded or picked) is the one attacked.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from advmnist.demo.engine import (
    ATTACKS,
    EPS,
    NORM_NAMES,
    TARGETABLE,
    attack_image,
    default_model_paths,
    draw,
    summary_markdown,
)
from advmnist.demo.preprocess import MAX_UPLOAD_BYTES, ImageError, Prepared, prepare, prepare_upload, to_gray
from advmnist.errors import AdvmnistError

log = logging.getLogger(__name__)
QUICK_BASELINE = "quick baseline (trained on first use)"
AUTO_LABEL = "auto (clean prediction)"
NO_TARGET = "none (untargeted)"
DIGITS = [str(d) for d in range(10)]
# The summary table scrolls sideways on a narrow screen rather than breaking words inside its cells.
CSS = """
#summary table { display: block; max-width: 100%; overflow-x: auto; }
#summary th, #summary td { white-space: nowrap; word-break: keep-all; overflow-wrap: normal; }
"""


@dataclass
class ModelShelf:
    """The models the demo offers: loaded ones, and ones built on first use (the quick baseline)."""

    loaded: dict[str, nn.Module] = field(default_factory=dict)
    lazy: dict[str, Callable[[], nn.Module]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [*self.loaded, *self.lazy]

    def get(self, names: list[str], say: Callable[[str], None] = lambda _: None) -> dict[str, nn.Module]:
        for name in names:
            if name in self.lazy:
                say(f"{name}: preparing it (first use only)")
                self.loaded[name] = self.lazy[name]()
                del self.lazy[name]  # only once built: a failed build is offered again
        return {name: self.loaded[name] for name in names}

    def available(self, names: list[str], say: Callable[[str], None]) -> tuple[dict[str, nn.Module], list[str]]:
        """The models of `names` that can be had, and why the others cannot (e.g. no MNIST to train
        the quick baseline on, offline): the robust model is still attacked without it."""
        problems = []
        for name in names:
            try:
                self.get([name], say)
            except AdvmnistError as exc:
                problems.append(f"{name}: {exc}")
        return {n: self.loaded[n] for n in names if n in self.loaded}, problems


def quick_baseline(cache: Path, data_dir: str | None = None) -> nn.Module:
    """A standard seed CNN, one epoch on 20,000 training images (~20 s on 2 cores), cached after."""
    from advmnist.data import load_mnist
    from advmnist.models import create_model, load_model, save_model
    from advmnist.training import TrainConfig, fit

    path = cache / "quick-baseline.safetensors"
    if path.is_file():
        return load_model(path)[0]
    train = load_mnist("train", data_dir, 20_000)
    torch.manual_seed(0)
    model = create_model("seed-cnn")
    fit(model, (train.x, train.y), None, TrainConfig(recipe="standard", epochs=1, lr=0.05, eval_every_epoch=False))
    cache.mkdir(parents=True, exist_ok=True)
    save_model(model, path.with_suffix(""), recipe={"recipe": "standard", "epochs": 1, "n_train": 20_000})
    return model.eval()


def make_shelf(paths: list[str], cache: Path, data_dir: str | None = None) -> ModelShelf:
    """Given checkpoints, else the shipped robust one; the quick baseline is always offered beside."""
    from advmnist.models import load_model

    shelf = ModelShelf()
    chosen = [Path(p) for p in paths] or default_model_paths()
    for path in chosen:
        shelf.loaded[path.stem] = load_model(path)[0].eval()
    shelf.lazy[QUICK_BASELINE] = lambda: quick_baseline(cache, data_dir)
    return shelf


@dataclass
class TestImages:
    """The MNIST test set, loaded on the first 'random test image'."""

    data_dir: str | None = None
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None

    def pick(self, seed: str | int | None) -> tuple[np.ndarray, int, int]:
        """(image (28, 28), label, index): a new image each call, the same one for a fixed `seed`
        (None or blank: no seed)."""
        text = str(seed).strip() if seed is not None else ""
        if text and not text.isdigit():
            raise ImageError(f"the seed must be a whole number >= 0 or empty, got {text!r}")
        if self.x is None or self.y is None:
            from advmnist.data import load_mnist

            split = load_mnist("test", self.data_dir)
            self.x, self.y = split.x, split.y
        rng = np.random.default_rng(int(text) if text else None)
        i = int(rng.integers(len(self.y)))
        return self.x[i, 0].numpy(), int(self.y[i]), i


def image_from_inputs(source: str, sketch: Any, upload: bytes | None, picked: np.ndarray | None) -> np.ndarray:
    """The (28, 28) image to attack from whichever input `source` names; `ImageError` says why not."""
    return prepared_from_inputs(source, sketch, upload, picked).image


def prepared_from_inputs(source: str, sketch: Any, upload: bytes | None, picked: np.ndarray | None) -> Prepared:
    """Like `image_from_inputs`, with the preprocessing's notes for the user (16-bit, transparency ...)."""
    if source == "draw":
        composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
        if composite is None:
            raise ImageError("the canvas is empty: draw a digit")
        return prepare(to_gray(np.asarray(composite)))
    if source == "upload":
        if not upload:
            raise ImageError("no file uploaded")
        return prepare_upload(upload)
    if picked is None:
        raise ImageError("no test image picked yet: press 'random test image'")
    return Prepared(picked)


def source_changed(source: str, caption: str, picked_label: int | None, label_choice: str) -> tuple[str, str]:
    """(caption, true label) when the input changes: a picked image's caption and dataset label hold
    only while it is the input; leaving it clears both (unless the user chose another label)."""
    if source == "pick" and picked_label is not None:
        return caption, str(picked_label)
    if picked_label is not None and label_choice == str(picked_label):
        label_choice = AUTO_LABEL
    return "", label_choice


def attack_changed(attack: str, norm: str) -> tuple[dict[str, Any], ...]:
    """Updates for (steps, queries, target, norm): each attack shows its own budget and defaults."""
    spec = ATTACKS[attack]
    knob = spec.budget.knob if spec.budget else None
    budget = {}
    if spec.budget:
        b = spec.budget
        budget = {"minimum": b.low, "maximum": b.high, "step": b.step, "value": b.default}
    steps = {"visible": knob == "steps", **(budget if knob == "steps" else {})}
    queries = {"visible": knob == "queries", **(budget if knob == "queries" else {})}
    if spec.targetable:
        target = {"interactive": True, "info": f"{' and '.join(TARGETABLE)} can pull the image to a class"}
    else:
        note = f"{attack} is untargeted; {' and '.join(TARGETABLE)} can target"
        target = {"interactive": False, "value": NO_TARGET, "info": note}
    norms = [NORM_NAMES[n] for n in spec.norms]
    return steps, queries, target, {"value": norm if norm in norms else norms[0]}


def norm_changed(norm: str) -> dict[str, Any]:
    """The eps slider for this norm: its own range, set to the MNIST standard budget."""
    r = EPS[norm.lower()]
    return {"maximum": r.high, "step": r.step, "value": r.standard, "label": eps_label(norm)}


def eps_label(norm: str) -> str:
    return f"eps ({norm}; MNIST standard: {EPS[norm.lower()].standard:g})"


def _upscaled(image: np.ndarray) -> np.ndarray:
    """(28, 28) in [0, 1] -> (224, 224) uint8, so the browser shows the pixels the model sees."""
    return np.kron((np.clip(image, 0, 1) * 255).astype(np.uint8), np.ones((8, 8), dtype=np.uint8))


@dataclass(frozen=True)
class Request:
    """What the attack button sends, as the widgets hold it."""

    source: str
    sketch: Any
    upload: bytes | None
    picked: np.ndarray | None
    label: str  # AUTO_LABEL or a digit
    target: str  # NO_TARGET or a digit
    names: list[str]
    attack: str
    norm: str  # "Linf" or "L2"
    eps: float
    steps: float
    queries: float


def run_request(shelf: ModelShelf, r: Request, say: Callable[[str], None]) -> tuple[Any, ...]:
    """(seen, figure, summary, status) for one click of 'attack'; every user error is one line in status."""
    try:
        if not r.names:
            raise ImageError("choose at least one model")
        prepared = prepared_from_inputs(r.source, r.sketch, r.upload, r.picked)
        image = prepared.image
        spec = ATTACKS.get(r.attack)
        budget = r.queries if spec and spec.budget and spec.budget.knob == "queries" else r.steps
        label = None if r.label == AUTO_LABEL else int(r.label)
        target = None if r.target == NO_TARGET else int(r.target)
        models, problems = shelf.available(list(r.names), say=say)
        if not models:
            raise ImageError("; ".join(problems))
        say(f"{r.attack} on {len(models)} model(s)")
        norm = r.norm.lower()
        outcomes = attack_image(models, image, label, r.attack, norm, float(r.eps), int(budget), target=target)
    except (ValueError, AdvmnistError) as exc:  # ImageError is one; so are bad attack/norm/eps combinations
        return None, None, "", f"**Error:** {exc}"
    png = draw(image, outcomes, r.attack, norm, float(r.eps))
    figure = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    fooled = sum(o.success for o in outcomes)
    status = f"Done: {fooled} of {len(outcomes)} model(s) {'reached the target' if target is not None else 'fooled'}."
    status += "".join(f" Left out: {problem}." for problem in problems)
    notes = "".join(f"*Note: {note}.*\n\n" for note in prepared.notes)  # e.g. a 16-bit image rescaled
    return _upscaled(image), figure, notes + summary_markdown(outcomes, r.attack, norm, float(r.eps)), status


def _input_column(gr: Any) -> dict[str, Any]:
    ui = {"source": gr.Radio(["draw", "upload", "pick"], value="draw", label="input", elem_id="source")}
    ui["sketch"] = gr.Sketchpad(label="draw a digit (pick the brush first)", elem_id="sketch", canvas_size=(280, 280))
    ui["upload"] = gr.File(label="or upload an image", type="binary", file_types=["image"], elem_id="upload")
    with gr.Row():
        ui["seed"] = gr.Textbox(label="seed", placeholder="empty: a new image each click", elem_id="seed")
        ui["pick"] = gr.Button("random test image", elem_id="pick")
    ui["picked_info"] = gr.Markdown(elem_id="picked")
    ui["label"] = gr.Dropdown(
        [AUTO_LABEL, *DIGITS], value=AUTO_LABEL, label="true label", elem_id="label",
        info="what the digit really is: 'fooled' is measured against it",
    )  # fmt: skip
    return ui


def _attack_column(gr: Any, shelf: ModelShelf) -> dict[str, Any]:
    names = shelf.names()  # all ticked: the first result shows a fooled baseline beside a robust model
    ui = {"names": gr.CheckboxGroup(names, value=names, label="models", elem_id="models")}
    ui["attack"] = gr.Dropdown(list(ATTACKS), value="PGD", label="attack", elem_id="attack")
    ui["norm"] = gr.Radio(["Linf", "L2"], value="Linf", label="norm", elem_id="norm")
    eps = EPS["linf"]
    ui["eps"] = gr.Slider(0.01, eps.high, value=eps.standard, step=eps.step, label=eps_label("Linf"), elem_id="eps")
    steps, queries = _budget(gr, "PGD", "steps"), _budget(gr, "Square", "queries")
    ui["steps"], ui["queries"] = steps, queries
    ui["target"] = gr.Dropdown(
        [NO_TARGET, *DIGITS], value=NO_TARGET, label="target class", elem_id="target",
        info=f"{' and '.join(TARGETABLE)} can pull the image to a class",
    )  # fmt: skip
    ui["go"] = gr.Button("attack", variant="primary", elem_id="go")
    ui["status"] = gr.Markdown(elem_id="status")  # errors and progress, next to the button
    return ui


def _budget(gr: Any, attack: str, knob: str) -> Any:
    """The slider of one kind of budget, set up for `attack` (shown only for attacks that use it)."""
    b = ATTACKS[attack].budget
    if b is None or b.knob != knob:
        raise ValueError(f"{attack} has no {knob}")
    return gr.Slider(b.low, b.high, value=b.default, step=b.step, label=knob, elem_id=knob, visible=attack == "PGD")


def _wire_inputs(gr: Any, ui: dict[str, Any], test: TestImages) -> None:
    """The input radio follows the last input touched; a picked image brings its caption and label."""

    def pick(seed: str) -> tuple[Any, ...]:
        try:
            image, label, i = test.pick(seed)
        except (ValueError, AdvmnistError) as exc:
            return (gr.skip(),) * 7 + (f"**Error:** {exc}",)
        caption = f"test image {i}, label {label}"
        return image, label, caption, caption, _upscaled(image), str(label), "pick", ""

    names = ["picked", "picked_label", "caption", "picked_info", "seen", "label", "source", "status"]
    ui["pick"].click(pick, [ui["seed"]], [ui[n] for n in names], show_progress_on=ui["status"])
    # The radio moves in the browser (no round trip, so in the order the user acts); Gradio 6 sends
    # no `input` event for brush strokes, hence `change`. Then the picked image's caption and label go.
    for event, source in ((ui["sketch"].change, "draw"), (ui["upload"].upload, "upload")):
        event(None, None, ui["source"], js=f"() => '{source}'").then(
            lambda label, choice, source=source: (*source_changed(source, "", label, choice), None),
            [ui["picked_label"], ui["label"]],
            [ui["picked_info"], ui["label"], ui["seen"]],  # the last image seen is stale too
        )
    ui["source"].input(  # the user's own click on the radio
        source_changed, [ui["source"], ui["caption"], ui["picked_label"], ui["label"]], [ui["picked_info"], ui["label"]]
    )


def _wire_attack(gr: Any, ui: dict[str, Any], shelf: ModelShelf) -> None:
    """Each attack brings its own budget and norm, each norm its eps range; the button runs the request."""

    def on_attack(attack: str, norm: str) -> tuple[Any, ...]:
        return tuple(gr.update(**u) for u in attack_changed(attack, norm))

    ui["attack"].change(on_attack, [ui["attack"], ui["norm"]], [ui["steps"], ui["queries"], ui["target"], ui["norm"]])
    ui["norm"].change(lambda norm: gr.update(**norm_changed(norm)), ui["norm"], ui["eps"])

    def run(  # Gradio passes each widget as an argument
        source: str, sketch: Any, upload: bytes | None, picked: np.ndarray | None, label: str, target: str,
        names: list[str], attack: str, norm: str, eps: float, steps: float, queries: float,
    ) -> tuple[Any, ...]:  # fmt: skip
        request = Request(source, sketch, upload, picked, label, target, names, attack, norm, eps, steps, queries)
        return run_request(shelf, request, say=lambda msg: log.info("demo: %s", msg))

    def starting(attack: str, names: list[str]) -> str:
        first_use = " (the quick baseline is prepared first: up to ~20 s, once)" if set(names) & set(shelf.lazy) else ""
        return f"Working: {attack} on {len(names)} model(s){first_use}..."

    fields = ["source", "sketch", "upload", "picked", "label", "target", "names", "attack", "norm", "eps"]
    outputs = [ui["seen"], ui["result"], ui["summary"], ui["status"]]
    ui["go"].click(starting, [ui["attack"], ui["names"]], ui["status"], queue=False).then(
        run,
        [ui[f] for f in [*fields, "steps", "queries"]],
        outputs,
        show_progress="minimal",
        show_progress_on=ui["status"],
    )  # the status line says what runs (a timer beside it), then the result or the error


def build_app(shelf: ModelShelf, data_dir: str | None = None) -> Any:
    """The page: inputs on the left, models and attack settings on the right, results below."""
    import gradio as gr

    with gr.Blocks(title="advmnist demo", analytics_enabled=False) as app:
        gr.Markdown(
            "# advmnist: adversarial examples on MNIST\n"
            "Draw a digit, upload a picture of one, or pick a test image; choose models and an attack; "
            "see the adversarial image, the perturbation and the class probabilities before and after."
        )
        ui: dict[str, Any] = {"picked": gr.State(None), "picked_label": gr.State(None), "caption": gr.State("")}
        with gr.Row():
            with gr.Column():
                ui.update(_input_column(gr))
            with gr.Column():
                ui.update(_attack_column(gr, shelf))
        ui["seen"] = gr.Image(label="what the model sees (28x28)", elem_id="seen", height=224, width=224)
        ui["result"] = gr.Image(label="result", elem_id="result")
        ui["summary"] = gr.Markdown(elem_id="summary")
        _wire_inputs(gr, ui, TestImages(data_dir))
        _wire_attack(gr, ui, shelf)
    return app


def launch(paths: list[str], *, host: str = "127.0.0.1", port: int | None = None, data_dir: str | None = None) -> None:
    """Serve the demo until interrupted."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from advmnist.data.mnist import cache_dir

    shelf = make_shelf(paths, cache_dir() / "demo", data_dir)
    app = build_app(shelf, data_dir)
    app.queue().launch(
        server_name=host, server_port=port, max_file_size=MAX_UPLOAD_BYTES, show_error=False, quiet=False, css=CSS
    )
