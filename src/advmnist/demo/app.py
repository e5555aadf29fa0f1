"""`advmnist demo`: draw, upload or pick a digit, attack it on one or more models, see what changed.

A thin Gradio 6 layout over `engine` (the attacks, the figure) and `preprocess` (the MNIST way,
upload limits). Nothing leaves the machine: analytics are off and the server binds 127.0.0.1
unless `--host` says otherwise. Every error the user can cause is shown as one line in the UI.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from advmnist.demo.engine import ATTACKS, attack_image, default_model_paths, draw, summary_markdown
from advmnist.demo.preprocess import MAX_UPLOAD_BYTES, ImageError, Prepared, prepare, prepare_upload, to_gray

QUICK_BASELINE = "quick baseline (trained on first use)"


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
                self.loaded[name] = self.lazy.pop(name)()
        return {name: self.loaded[name] for name in names}


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


def _upscaled(image: np.ndarray) -> np.ndarray:
    """(28, 28) in [0, 1] -> (224, 224) uint8, so the browser shows the pixels the model sees."""
    return np.kron((np.clip(image, 0, 1) * 255).astype(np.uint8), np.ones((8, 8), dtype=np.uint8))


def build_app(shelf: ModelShelf, data_dir: str | None = None) -> Any:
    import gradio as gr

    test: dict[str, Any] = {}

    def random_test_image(seed: float) -> tuple[Any, ...]:
        from advmnist.data import load_mnist
        from advmnist.errors import DataError

        try:
            if "x" not in test:
                split = load_mnist("test", data_dir)
                test.update(x=split.x, y=split.y)
        except DataError as exc:
            return None, None, None, f"**Error:** {exc}"
        i = int(np.random.default_rng(int(seed)).integers(len(test["y"])))
        image = test["x"][i, 0].numpy()
        label = int(test["y"][i])
        return image, label, _upscaled(image), f"test image {i}, label {label}"

    def run(source, sketch, upload, picked, label, names, attack, norm, eps, steps, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008  (Gradio's way)
        try:
            if not names:
                raise ImageError("choose at least one model")
            prepared = prepared_from_inputs(source, sketch, upload, picked)
            image = prepared.image
            label = label if source == "pick" else None
            models = shelf.get(list(names), say=lambda msg: progress(0.1, desc=msg))
            progress(0.5, desc=f"{attack} on {len(models)} model(s)")
            outcomes = attack_image(models, image, label, attack, norm.lower(), float(eps), int(steps))
        except ValueError as exc:  # ImageError is one; so are bad attack/norm/eps combinations
            return None, None, f"**Error:** {exc}"
        png = draw(image, outcomes, attack, norm.lower(), float(eps))
        figure = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        notes = "".join(f"*Note: {note}.*\n\n" for note in prepared.notes)
        return _upscaled(image), figure, notes + summary_markdown(outcomes, attack, norm.lower(), float(eps))

    with gr.Blocks(title="advmnist demo", analytics_enabled=False) as app:
        gr.Markdown(
            "# advmnist: adversarial examples on MNIST\n"
            "Draw a digit, upload a picture of one, or pick a test image; choose models and an attack; "
            "see the adversarial image, the perturbation and the class probabilities before and after."
        )
        picked, label = gr.State(None), gr.State(None)
        with gr.Row():
            with gr.Column():
                source = gr.Radio(["draw", "upload", "pick"], value="draw", label="input", elem_id="source")
                sketch = gr.Sketchpad(
                    label="draw a digit (pick the brush first)", elem_id="sketch", canvas_size=(280, 280)
                )
                upload = gr.File(label="or upload an image", type="binary", file_types=["image"], elem_id="upload")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, label="seed", scale=1)
                    pick = gr.Button("random test image", elem_id="pick")
                picked_info = gr.Markdown(elem_id="picked")
            with gr.Column():
                names = gr.CheckboxGroup(shelf.names(), value=shelf.names()[:1], label="models", elem_id="models")
                attack = gr.Dropdown(list(ATTACKS), value="PGD", label="attack", elem_id="attack")
                norm = gr.Radio(["Linf", "L2"], value="Linf", label="norm", elem_id="norm")
                eps = gr.Slider(0.01, 3.0, value=0.3, step=0.01, label="eps", elem_id="eps")
                steps = gr.Slider(1, 200, value=40, step=1, label="steps (Square: queries)", elem_id="steps")
                go = gr.Button("attack", variant="primary", elem_id="go")
        seen = gr.Image(label="what the model sees (28x28)", elem_id="seen", height=224, width=224)
        result = gr.Image(label="result", elem_id="result")
        summary = gr.Markdown(elem_id="summary")
        pick.click(random_test_image, [seed], [picked, label, seen, picked_info]).then(lambda: "pick", None, source)
        go.click(run, [source, sketch, upload, picked, label, names, attack, norm, eps, steps], [seen, result, summary])
    return app


def launch(paths: list[str], *, host: str = "127.0.0.1", port: int | None = None, data_dir: str | None = None) -> None:
    """Serve the demo until interrupted."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from advmnist.data.mnist import cache_dir

    shelf = make_shelf(paths, cache_dir() / "demo", data_dir)
    app = build_app(shelf, data_dir)
    app.queue().launch(
        server_name=host, server_port=port, max_file_size=MAX_UPLOAD_BYTES, show_error=False, quiet=False
    )
