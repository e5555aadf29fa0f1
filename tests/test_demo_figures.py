"""The demo's preprocessing of real-world pictures and its result figure, without a browser."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from PIL import Image, ImageDraw

from advmnist import create_model, load_model, pretrained_path
from advmnist.demo.engine import attack_image, draw
from advmnist.demo.preprocess import ImageError, decode_upload, prepare, prepare_upload, to_gray, to_mnist

PHONE_SHOWN_PX = 324  # a 390 px wide phone shows the result image this wide (Gradio's margins; measured)
LEGIBLE_PX = 10  # the smallest text, as shown on that phone


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _soft_one(size: int = 60) -> np.ndarray:
    """A white '1' with soft (anti-aliased) edges on black, float in [0, 1]."""
    xx = np.arange(size)[None, :] - size / 2
    yy = np.arange(size)[:, None]
    bar = np.clip(4 - np.abs(xx), 0, 1) * ((yy > 8) & (yy < size - 8))
    return np.clip(bar * np.linspace(0.6, 1.0, size)[:, None], 0, 1)  # graded: not just black and white


def photo_eight(seed: int = 0) -> np.ndarray:
    """A photographed black-on-white '8': 300x300 uint8, light falling off down the page, noise."""
    img = Image.new("L", (300, 300), 255)
    pen = ImageDraw.Draw(img)
    pen.ellipse((108, 45, 192, 140), outline=0, width=14)
    pen.ellipse((95, 128, 205, 255), outline=0, width=14)
    paper = np.asarray(img, dtype=np.float64) / 255  # 1 on paper, 0 on ink
    light = 0.92 - 0.2 * np.linspace(0, 1, 300)[:, None]  # brighter at the top
    page = paper * light + (1 - paper) * 0.2 + np.random.default_rng(seed).normal(0, 0.03, (300, 300))
    return (np.clip(page, 0, 1) * 255).round().astype(np.uint8)


def test_a_photographed_eight_becomes_an_mnist_eight() -> None:
    prepared = prepare_upload(_png(Image.fromarray(photo_eight())))
    out = prepared.image
    assert out.shape == (28, 28) and out.max() == pytest.approx(1.0, abs=0.02)
    rows, cols = np.nonzero(out > 0.1)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 in (19, 20, 21)  # the 20x20 box
    assert rows.min() >= 3 and cols.min() >= 3 and rows.max() <= 24 and cols.max() <= 24
    mass = out.sum()
    cy, cx = np.arange(28) @ out.sum(1) / mass, np.arange(28) @ out.sum(0) / mass
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1  # centred by mass, like MNIST
    ink = out > 0.3
    near = np.zeros_like(ink)  # the ink and its 2-pixel neighbourhood (anti-aliasing lives there)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            near |= np.roll(np.roll(ink, dy, 0), dx, 1)
    assert out[~near].max() <= 0.02  # a clean black background: no grey paper, no noise
    model = load_model(pretrained_path())[0].eval()
    with torch.no_grad():
        assert int(model(torch.from_numpy(out).reshape(1, 1, 28, 28)).argmax()) == 8
    assert any("background" in note for note in prepared.notes)


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    soft = _soft_one()
    as_8 = Image.fromarray((soft * 255).round().astype(np.uint8))
    as_16 = Image.fromarray((soft * 65535).round().astype(np.uint16))
    assert Image.open(io.BytesIO(_png(as_16))).mode.startswith("I")
    gray = decode_upload(_png(as_16))
    assert np.abs(gray - soft).max() < 1e-3  # the grades survive (PIL's convert() made them all white)
    prepared = prepare_upload(_png(as_16))
    assert np.abs(prepared.image - to_mnist(decode_upload(_png(as_8)))).max() < 0.02
    assert any("16-bit" in note for note in prepared.notes)


def test_palette_and_transparent_images_match_their_gray_version() -> None:
    soft = _soft_one()
    reference = to_mnist(soft)
    palette = Image.fromarray((soft * 255).round().astype(np.uint8)).convert("P")
    assert np.abs(prepare_upload(_png(palette)).image - reference).max() < 0.03
    ink_on_clear = np.zeros((*soft.shape, 2), np.uint8)  # LA: black ink whose alpha is the digit
    ink_on_clear[..., 1] = (soft * 255).round().astype(np.uint8)
    la = prepare_upload(_png(Image.fromarray(ink_on_clear, "LA")))
    assert np.abs(la.image - reference).max() < 0.03 and any("transparent" in n for n in la.notes)
    rgba = np.zeros((*soft.shape, 4), np.uint8)  # RGBA: white ink on transparent white
    rgba[..., :3] = 255
    rgba[..., 3] = ink_on_clear[..., 1]
    assert np.abs(prepare_upload(_png(Image.fromarray(rgba, "RGBA"))).image - reference).max() < 0.03
    transparent_palette = Image.fromarray(rgba, "RGBA").convert("P")  # PIL keeps a transparency index
    assert prepare_upload(_png(transparent_palette)).image.max() > 0.9


def test_too_small_is_not_empty_and_empty_stays_empty() -> None:
    with pytest.raises(ImageError, match="1x1 pixels: too small") as info:
        to_mnist(to_gray(np.zeros((1, 1), np.uint8)))
    assert "\n" not in str(info.value)
    with pytest.raises(ImageError, match="too small"):
        prepare_upload(_png(Image.fromarray(np.full((1, 1), 255, np.uint8))))
    blank_photo = 0.85 + np.random.default_rng(1).normal(0, 0.03, (200, 200))  # paper and noise, no digit
    with pytest.raises(ImageError, match="empty"):
        prepare(np.clip(blank_photo, 0, 1))
    with pytest.raises(ImageError, match="empty"):
        prepare(np.zeros((28, 28)))


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """The matplotlib figures that `draw` saves (so their laid-out text can be measured)."""
    figures: list[Figure] = []
    original = Figure.savefig

    def savefig(self: Figure, *args: Any, **kwargs: Any) -> None:
        figures.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    yield figures


NAMES = ["robust-seed-cnn", "quick baseline (trained on first use)", "a-long-checkpoint-name-with-no-spaces-at-all"]


def draw_figure(n_models: int, captured: list[Figure]) -> tuple[Figure, bytes]:
    """`draw` for `n_models` linear models with long names; the figure it drew and its PNG."""
    torch.manual_seed(0)
    image = np.zeros((28, 28), np.float32)
    image[4:24, 12:16] = 1
    models = {name: create_model("linear").eval() for name in NAMES[:n_models]}
    outcomes = attack_image(models, image, None, "PGD", "linf", 0.3, 5)
    png = draw(image, outcomes, "PGD", "linf", 0.3)
    return captured[-1], png


def smallest_text_px(fig: Figure) -> float:
    """The smallest font in the figure, in pixels of its PNG."""
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return min(t.get_fontsize() for t in texts) * fig.dpi / 72


def _titles(fig: Figure) -> list[tuple[Text, Any]]:
    """(text, its axes or None) for every axes title and every figure-level text (headings)."""
    titles = [(ax.title, ax) for ax in fig.axes if ax.title.get_text()]
    titles += [(t, None) for t in fig.texts if t.get_text()]
    titles += [(sub._suptitle, None) for sub in fig.subfigs if sub._suptitle is not None]
    if fig._suptitle is not None:
        titles.append((fig._suptitle, None))
    return titles


@pytest.mark.parametrize("n_models", [1, 2, 3])
def test_titles_are_whole_inside_their_columns_and_never_collide(n_models: int, captured: list[Figure]) -> None:
    fig, png = draw_figure(n_models, captured)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    whole = fig.bbox
    half = whole.width / 2
    boxes: list[Bbox] = []
    for text, ax in _titles(fig):
        box = text.get_window_extent(renderer)
        assert whole.x0 - 0.5 <= box.x0 and box.x1 <= whole.x1 + 0.5, text.get_text()  # not clipped
        assert whole.y0 - 0.5 <= box.y0 and box.y1 <= whole.y1 + 0.5, text.get_text()
        if ax is not None:  # a panel title stays in its column of the grid
            left = ax.get_window_extent(renderer).x0 + ax.get_window_extent(renderer).width / 2 < half
            assert (box.x1 <= half + 0.5) if left else (box.x0 >= half - 0.5), text.get_text()
        boxes.append(box)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), "two titles overlap"
    for box in boxes:  # and no title covers a panel
        assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
    # legible on a phone: the smallest text, shown PHONE_SHOWN_PX wide, is still >= LEGIBLE_PX
    width = Image.open(io.BytesIO(png)).size[0]
    assert smallest_text_px(fig) * min(1.0, PHONE_SHOWN_PX / width) >= LEGIBLE_PX


def test_the_perturbation_panel_says_what_it_shows(captured: list[Figure]) -> None:
    fig, _ = draw_figure(1, captured)
    titles = [ax.title.get_text().replace("\n", " ").replace("\N{NO-BREAK SPACE}", " ") for ax in fig.axes]
    assert any("perturbation (adv - clean)" in t and "Linf = 0.300" in t for t in titles), titles
    colour_bars = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    assert len(colour_bars) == 1
    bar = colour_bars[0]
    assert (bar.get_xlabel() or bar.get_ylabel()).strip()  # the colour bar has a label


def test_a_drawing_on_a_clean_background_keeps_its_soft_edges_and_gets_no_note() -> None:
    yy, xx = np.mgrid[0:280, 0:280]
    rings = [np.abs(np.hypot(yy - 90, xx - 140) - 45), np.abs(np.hypot(yy - 190, xx - 140) - 55)]
    alpha = np.maximum(*[np.clip((12 - d) / 4, 0, 1) for d in rings])  # an '8' with 4 px soft edges
    canvas = np.zeros((280, 280, 4), np.uint8)  # a sketchpad: transparent, black strokes
    canvas[..., 3] = (alpha * 255).round().astype(np.uint8)
    gray = to_gray(canvas)
    prepared = prepare(gray)
    assert prepared.notes == ()  # nothing was done that the user should hear about
    edges = (1 - gray > 0.05) & (1 - gray < 0.45)  # the soft edge, below Otsu's cut: still ink, not paper
    assert edges.sum() > 1000 and to_mnist(gray).max() == pytest.approx(1.0, abs=0.02)
    cut = prepare(np.where(edges, 1.0, gray)).image  # the same drawing without its soft edges
    assert prepared.image.sum() > cut.sum() * 1.02  # so the soft edges count in what the model sees
