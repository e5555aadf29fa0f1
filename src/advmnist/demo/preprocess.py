"""Turn a drawn or uploaded picture into the 28x28 image an MNIST model expects, or say why not.

The MNIST way (LeCun et al.): grayscale, white digit on black, cropped to its bounding box, scaled
so the longer side is 20 pixels, then placed in a 28x28 field with its centre of mass at the
centre. Before the crop, a photo's paper is told from its ink by Otsu's threshold: the background
(uneven light, noise, grey paper) goes to exactly 0 and the ink's contrast is stretched to 1.
Uploads are bounded before decoding: size in bytes, pixel count (decompression bombs) and
dimensions; every refusal is an `ImageError` with a one-line message for the UI, and whatever the
user should know about (a 16-bit image rescaled, transparency, a stretched contrast) comes back
as short notes beside the image.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4096  # pixels per side
MAX_PIXELS = MAX_SIDE * MAX_SIDE // 4  # decoded pixels; a bigger claim is a decompression bomb
MIN_SIDE = 8  # pixels per side; anything smaller cannot hold a readable digit
INK = 0.1  # ink and paper must differ at least this much (in [0, 1]) for there to be a digit
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageError(ValueError):
    """A picture that cannot become an MNIST digit; the message is shown in the UI as it is."""


@dataclass(frozen=True)
class Prepared:
    """The (28, 28) float32 image the model sees, and notes for the user about how it was made."""

    image: np.ndarray
    notes: tuple[str, ...] = ()


def decode_upload(data: bytes) -> np.ndarray:
    """Bytes of an image file -> (H, W) float array in [0, 1]; refuses anything unsafe or not an image."""
    return read_upload(data)[0]


def read_upload(data: bytes) -> tuple[np.ndarray, list[str]]:
    """Like `decode_upload`, with notes on what was done to the pixels (16-bit scaling, transparency)."""
    if not data:
        raise ImageError("the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size  # read from the header, before any pixel is decoded
                if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
                    raise ImageError(f"the image is {width}x{height} pixels; the limit is {MAX_SIDE} per side")
                return _pixels(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("the image claims too many pixels (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError):
        raise ImageError("this is not an image PIL can read (PNG, JPEG, GIF, BMP, WebP ...)") from None


def _pixels(img: Image.Image) -> tuple[np.ndarray, list[str]]:
    """A decoded PIL image of any mode -> (H, W) gray in [0, 1], and notes."""
    if img.mode in SIXTEEN_BIT:  # 16-bit gray: PIL's convert() would clip every value above 255 to white
        values = np.asarray(img).astype(np.float64)
        if img.mode == "I" and values.max(initial=0) <= 255:
            return np.clip(values / 255.0, 0, 1), []
        return np.clip(values / 65535.0, 0, 1), ["16-bit grayscale image scaled to [0, 1] (its range is 0-65535)"]
    if img.mode == "F":  # 32-bit float (TIFF): [0, 1] as it is, else scaled by its own range
        values = np.nan_to_num(np.asarray(img, dtype=np.float64))
        if values.min(initial=0) >= 0 and values.max(initial=0) <= 1:
            return values, []
        low, high = float(values.min()), float(values.max())
        return (values - low) / ((high - low) or 1.0), [
            f"floating-point image scaled from [{low:g}, {high:g}] to [0, 1]"
        ]
    rgba = np.asarray(img.convert("RGBA"))  # palette, LA, CMYK, ...: PIL applies the palette and its transparency
    notes = []
    if rgba[..., 3].min() < 255:
        notes.append("transparent pixels taken as background")
    return to_gray(rgba), notes


def to_gray(array: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) pixels (uint8, uint16 or float) -> (H, W) in [0, 1].

    Transparent pixels count as background: a sketchpad's empty canvas is transparent, and its
    strokes are opaque.
    """
    a = np.asarray(array)
    scale = 65535.0 if a.dtype == np.uint16 else 255.0
    a = a.astype(np.float64)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)) or a.size == 0:
        raise ImageError(f"expected an image of shape (H, W[, 1|2|3|4]), got {a.shape}")
    if a.max(initial=0) > 1:
        a = a / scale
    if a.ndim == 2:
        return np.clip(a, 0, 1)
    channels = a.shape[2]
    gray = a[..., :3] @ np.array([0.299, 0.587, 0.114]) if channels >= 3 else a[..., 0]
    if channels in (2, 4):  # composite onto the colour opposite to the strokes' (ink on transparent)
        alpha = a[..., -1]
        if alpha.min() < 0.99:
            ink = gray[alpha > 0.5].mean() if (alpha > 0.5).any() else 1.0
            background = 0.0 if ink > 0.5 else 1.0
            gray = gray * alpha + background * (1 - alpha)
    return np.clip(gray, 0, 1)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: the cut that maximises the between-class variance."""
    hist, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=bins, range=(0.0, 1.0))
    p = hist / max(int(hist.sum()), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)  # weight of the class at or below each cut
    mu0 = np.cumsum(p * centres)
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu0[-1] * w0 - mu0) ** 2 / (w0 * w1)
    between[~np.isfinite(between) | (w0 <= 0) | (w1 <= 1e-12)] = -1.0
    return float(edges[int(np.argmax(between)) + 1])


def prepare_upload(data: bytes) -> Prepared:
    """Bytes of an image file -> the MNIST-style digit, with every note on the way."""
    gray, notes = read_upload(data)
    prepared = prepare(gray)
    return Prepared(prepared.image, (*notes, *prepared.notes))


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """(H, W) gray image in [0, 1] -> (28, 28) float32, white digit on black, centred by mass."""
    return prepare(gray).image


def prepare(gray: np.ndarray) -> Prepared:
    """(H, W) gray image in [0, 1] -> the MNIST-style digit, with notes; `ImageError` says why not."""
    img = np.asarray(gray, dtype=np.float64)
    if img.ndim != 2:
        raise ImageError(f"expected a gray (H, W) image, got shape {img.shape}")
    h, w = img.shape
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"the image is {w}x{h} pixels: too small for a digit (at least {MIN_SIDE} a side)")
    img, mask, notes = _separate(img)
    rows, cols = np.nonzero(mask)
    crop = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]  # the bounding box of the ink
    return Prepared(_centre(crop), tuple(notes))


def _separate(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Ink from paper: -> white-on-black image with the background at exactly 0, the ink mask, notes."""
    threshold = otsu_threshold(img)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    if np.median(border) > threshold:  # the paper is the lighter class: invert to MNIST's white on black
        img, threshold = 1.0 - img, 1.0 - threshold
    ink, paper = img[img > threshold], img[img <= threshold]
    if ink.size == 0 or paper.size == 0 or ink.mean() - paper.mean() < INK:
        raise ImageError("the image is empty: draw or upload a digit")
    # A clean background (a drawing, a scan) is mostly exactly 0: keep every soft edge of the ink.
    # Otherwise (a photo: grey paper, uneven light, noise) the brightest paper goes to 0.
    clean = float(np.percentile(paper, 90)) <= 0.02
    low = 0.0 if clean else min(float(np.percentile(paper, 99.5)), threshold)
    high = max(float(np.median(ink)), low + INK)  # typical ink -> 1
    notes = []
    if low > 0.05:
        notes.append(f"background levelled: {paper.size / img.size:.0%} of the pixels taken as paper (Otsu)")
    if high - low < 0.5:
        notes.append(f"low contrast ({high - low:.2f}): stretched to the full range")
    cleaned = np.clip((img - low) / (high - low), 0, 1)
    return cleaned, _without_specks(img > threshold), notes


def _without_specks(mask: np.ndarray) -> np.ndarray:
    """Drop ink pixels with fewer than two ink neighbours (noise), unless that would drop them all."""
    padded = np.pad(mask.astype(np.int32), 1)
    h, w = mask.shape
    neighbours = sum(padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    kept = mask & (neighbours >= 3)  # the pixel itself and at least two neighbours
    return kept if kept.any() else mask


def _centre(crop: np.ndarray) -> np.ndarray:
    """A cropped digit -> (28, 28) float32: longer side scaled to 20, centre of mass at (14, 14)."""
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pil = Image.fromarray((crop * 255).round().astype(np.uint8))
    small = np.asarray(pil.resize(size, Image.Resampling.LANCZOS)).astype(np.float64) / 255.0
    mass = small.sum()
    cy, cx = (np.arange(small.shape[0]) @ small.sum(1)) / mass, (np.arange(small.shape[1]) @ small.sum(0)) / mass
    top, left = int(round(14 - cy)), int(round(14 - cx))  # the centre of mass goes to (14, 14)
    top, left = min(max(top, 0), 28 - small.shape[0]), min(max(left, 0), 28 - small.shape[1])
    out = np.zeros((28, 28))
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.clip(out, 0, 1).astype(np.float32)
