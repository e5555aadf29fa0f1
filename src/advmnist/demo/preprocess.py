"""Turn a drawn or uploaded picture into the 28x28 image an MNIST model expects, or say why not.

The MNIST way (LeCun et al.): grayscale, white digit on black, cropped to its bounding box, scaled
so the longer side is 20 pixels, then placed in a 28x28 field with its centre of mass at the
centre. Uploads are bounded before decoding: size in bytes, pixel count (decompression bombs) and
dimensions; every refusal is an `ImageError` with a one-line message for the UI.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4096  # pixels per side
MAX_PIXELS = MAX_SIDE * MAX_SIDE // 4  # decoded pixels; a bigger claim is a decompression bomb
INK = 0.1  # a pixel at least this bright (after inverting to white-on-black) is part of the digit


class ImageError(ValueError):
    """A picture that cannot become an MNIST digit; the message is shown in the UI as it is."""


def decode_upload(data: bytes) -> np.ndarray:
    """Bytes of an image file -> (H, W) float array in [0, 1]; refuses anything unsafe or not an image."""
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
                return to_gray(np.asarray(img.convert("RGBA")))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("the image claims too many pixels (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError):
        raise ImageError("this is not an image PIL can read (PNG, JPEG, GIF, BMP, WebP ...)") from None


def to_gray(array: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 3) or (H, W, 4) pixels (uint8 or float) -> (H, W) float in [0, 1].

    Transparent pixels count as background: a sketchpad's empty canvas is transparent, and its
    strokes are opaque.
    """
    a = np.asarray(array, dtype=np.float64)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or a.size == 0:
        raise ImageError(f"expected an image of shape (H, W[, 1|3|4]), got {a.shape}")
    if a.max(initial=0) > 1:
        a = a / 255.0
    if a.ndim == 2:
        return np.clip(a, 0, 1)
    if a.shape[2] == 1:
        return np.clip(a[..., 0], 0, 1)
    gray = a[..., :3] @ np.array([0.299, 0.587, 0.114])
    if a.shape[2] == 4:  # composite onto the colour opposite to the strokes' (ink on transparent)
        alpha = a[..., 3]
        if alpha.min() < 0.99:
            ink = gray[alpha > 0.5].mean() if (alpha > 0.5).any() else 1.0
            background = 0.0 if ink > 0.5 else 1.0
            gray = gray * alpha + background * (1 - alpha)
    return np.clip(gray, 0, 1)


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """(H, W) gray image in [0, 1] -> (28, 28) float32, white digit on black, centred by mass."""
    img = np.asarray(gray, dtype=np.float64)

    def border() -> np.ndarray:
        return np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])

    if np.median(border()) > 0.5:  # dark ink on light paper: invert to MNIST's white on black
        img = 1.0 - img
    img = np.clip(img - np.median(border()), 0, None)  # the background goes to 0
    if img.max() < INK:
        raise ImageError("the image is empty: draw or upload a digit")
    img = img / img.max()
    rows, cols = np.nonzero(img >= INK)
    img = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]  # the bounding box
    h, w = img.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray((img * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS))
    small = small.astype(np.float64) / 255.0
    mass = small.sum()
    cy, cx = (np.arange(small.shape[0]) @ small.sum(1)) / mass, (np.arange(small.shape[1]) @ small.sum(0)) / mass
    top, left = int(round(14 - cy)), int(round(14 - cx))  # the centre of mass goes to (14, 14)
    top, left = min(max(top, 0), 28 - small.shape[0]), min(max(left, 0), 28 - small.shape[1])
    out = np.zeros((28, 28))
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return np.clip(out, 0, 1).astype(np.float32)
