"""The demo without a browser: MNIST-style preprocessing, upload limits, the attack engine."""

from __future__ import annotations

import io
import socket
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from advmnist.demo.engine import ATTACKS, attack_image, check_request, draw, summary_markdown
from advmnist.demo.preprocess import MAX_UPLOAD_BYTES, ImageError, decode_upload, to_gray, to_mnist
from advmnist.models import create_model


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def _stroke_on_paper(height: int = 300, width: int = 200) -> np.ndarray:
    """A dark vertical bar (a '1') off-centre on white paper, RGB uint8."""
    paper = np.full((height, width, 3), 255, np.uint8)
    paper[40:200, 30:50] = 20
    return paper


def test_to_mnist_inverts_crops_scales_and_centres_by_mass() -> None:
    out = to_mnist(to_gray(_stroke_on_paper()))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.max() == pytest.approx(1.0, abs=0.02) and out[0].max() == 0  # white digit, black background
    rows, cols = np.nonzero(out > 0.1)
    assert rows.max() - rows.min() + 1 <= 20 and cols.max() - cols.min() + 1 <= 20  # the 20x20 box
    assert rows.max() - rows.min() + 1 >= 19  # the long side is scaled to ~20
    mass = out.sum()
    cy, cx = np.arange(28) @ out.sum(1) / mass, np.arange(28) @ out.sum(0) / mass
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_a_transparent_sketch_is_white_on_black_and_an_empty_one_is_refused() -> None:
    canvas = np.zeros((280, 280, 4), np.uint8)  # a sketchpad: transparent, black strokes
    canvas[100:180, 130:150] = (0, 0, 0, 255)
    out = to_mnist(to_gray(canvas))
    assert out.max() > 0.9 and out[0, 0] == 0
    with pytest.raises(ImageError, match="empty"):
        to_mnist(to_gray(np.zeros((280, 280, 4), np.uint8)))
    with pytest.raises(ImageError, match="empty"):
        to_mnist(to_gray(np.full((50, 50), 255, np.uint8)))


def _png_claiming(width: int, height: int) -> bytes:
    """A valid tiny PNG whose header claims width x height (a decompression bomb's trick)."""
    data = bytearray(_png(np.zeros((1, 1), np.uint8)))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image", "not an image"),
        (_png_claiming(100_000, 100_000), "decompression bomb"),  # PIL itself refuses to open it
        (_png_claiming(4000, 4000), "limit is 4096 per side"),  # 16M pixels: over the pixel budget
        (b"\x89PNG" + bytes(MAX_UPLOAD_BYTES), "the limit is 5 MB"),
    ],
)
def test_bad_uploads_are_refused_with_one_line(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message) as info:
        decode_upload(data)
    assert "\n" not in str(info.value)


def test_a_good_upload_decodes() -> None:
    gray = decode_upload(_png(_stroke_on_paper()))
    assert gray.shape == (300, 200) and gray.max() == pytest.approx(1.0) and gray.min() < 0.1


def test_requests_are_checked() -> None:
    assert check_request("PGD", "linf", 0.3, 40) == "pgd"
    with pytest.raises(ValueError, match="CW-L2 works in L2"):
        check_request("CW-L2", "linf", 0.3, 40)
    with pytest.raises(ValueError, match="eps must be in"):
        check_request("FGSM", "linf", 1.5, 1)
    with pytest.raises(ValueError, match="unknown attack"):
        check_request("nope", "linf", 0.3, 1)
    with pytest.raises(ValueError, match="steps"):
        check_request("PGD", "l2", 2.0, 0)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_every_demo_attack_runs_and_reports(attack: str) -> None:
    torch.manual_seed(0)
    model = create_model("linear").eval()
    image = to_mnist(to_gray(_stroke_on_paper()))
    norm = "l2" if attack == "CW-L2" else "linf"
    eps = 3.0 if norm == "l2" else 0.3
    (out,) = attack_image({"lin": model}, image, None, attack, norm, eps, 20)
    assert out.label == out.pred_before  # unlabelled input: the attack moves away from the clean prediction
    assert out.success == (out.pred_after != out.label)
    assert out.x_adv.shape == (28, 28) and 0 <= out.x_adv.min() and out.x_adv.max() <= 1
    measured = np.abs(out.x_adv - image).max() if norm == "linf" else np.linalg.norm(out.x_adv - image)
    assert measured <= eps + 1e-4 and out.distance == pytest.approx(measured, abs=1e-4)
    assert np.isclose(out.probs_after.sum(), 1, atol=1e-5)
    assert draw(image, [out], attack, norm, eps)[:4] == b"\x89PNG"
    assert f"| lin | {out.pred_before} " in summary_markdown([out], attack, norm, eps)


def test_inputs_and_the_model_shelf() -> None:
    pytest.importorskip("gradio", reason="the [demo] extra")
    from advmnist.demo.app import ModelShelf, image_from_inputs

    with pytest.raises(ImageError, match="canvas is empty"):
        image_from_inputs("draw", {"composite": None}, None, None)
    with pytest.raises(ImageError, match="no file uploaded"):
        image_from_inputs("upload", None, None, None)
    with pytest.raises(ImageError, match="no test image picked"):
        image_from_inputs("pick", None, None, None)
    drawn = image_from_inputs("draw", {"composite": _stroke_on_paper()}, None, None)
    assert drawn.shape == (28, 28) and drawn.max() > 0.9
    built: list[int] = []

    def build() -> torch.nn.Module:
        built.append(1)
        return create_model("linear")

    shelf = ModelShelf(loaded={"a": create_model("linear")}, lazy={"b": build})
    assert shelf.names() == ["a", "b"]
    said: list[str] = []
    assert set(shelf.get(["a", "b"], say=said.append)) == {"a", "b"} and built == [1] and "first use" in said[0]
    shelf.get(["b"])
    assert built == [1]  # built once, then kept


@pytest.mark.slow
def test_the_quick_baseline_trains_once_then_loads(real_mnist: None, tmp_path) -> None:  # noqa: ANN001
    pytest.importorskip("gradio", reason="the [demo] extra")
    from advmnist.data import load_mnist
    from advmnist.demo.app import quick_baseline

    model = quick_baseline(tmp_path)
    test = load_mnist("test", n=1000)
    with torch.no_grad():
        accuracy = (model.eval()(test.x).argmax(1) == test.y).float().mean()
    assert accuracy > 0.95  # one epoch on 20,000 images
    saved = (tmp_path / "quick-baseline.safetensors").stat().st_mtime_ns
    again = quick_baseline(tmp_path)  # from the cache this time: nothing is retrained or rewritten
    assert (tmp_path / "quick-baseline.safetensors").stat().st_mtime_ns == saved
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
    _first_attack_shows_a_fooled_baseline_beside_the_robust_model(tmp_path)


def _first_attack_shows_a_fooled_baseline_beside_the_robust_model(cache) -> None:  # noqa: ANN001
    """What a newcomer sees: every model ticked (the shipped robust one and the quick baseline, here
    from `cache`), each attack at its demo defaults, eps at the MNIST standard of its norm."""
    from advmnist.data import load_mnist
    from advmnist.demo.app import QUICK_BASELINE, make_shelf
    from advmnist.demo.engine import EPS

    shelf = make_shelf([], cache)
    assert shelf.names() == ["robust-seed-cnn", QUICK_BASELINE]  # the app ticks them all
    models = shelf.get(shelf.names())
    test = load_mnist("test", n=5)
    linf, l2 = EPS["linf"].standard, EPS["l2"].standard
    for i in range(4):
        image, label = test.x[i, 0].numpy(), int(test.y[i])
        robust, baseline = attack_image(models, image, label, "PGD", "linf", linf)
        assert baseline.success and not robust.success, i
        (square,) = attack_image({"b": models[QUICK_BASELINE]}, image, label, "Square", "linf", linf)
        assert square.success, i  # 1,000 queries (40, the old shared slider, fooled nothing)
    image, label = test.x[4, 0].numpy(), int(test.y[4])
    (pgd,) = attack_image({"b": models[QUICK_BASELINE]}, image, label, "PGD", "l2", l2)
    (cw,) = attack_image({"b": models[QUICK_BASELINE]}, image, label, "CW-L2", "l2", l2)
    assert pgd.success and cw.success  # CW-L2 at 100 steps (at 40 it failed here)


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--model", "nope.safetensors"], "model(s) not found: nope.safetensors"), (["--port", "99999"], "--port")],
)
def test_demo_cli_bad_input_is_one_line_exit_2(flags: list[str], message: str) -> None:
    from conftest import run_cli

    proc = run_cli("demo", *flags)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_demo_cli_busy_port_is_one_line_exit_2() -> None:
    from conftest import run_cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("demo", "--port", str(port))
    assert proc.returncode == 2, proc.stderr
    assert f"port {port} on 127.0.0.1 is not free" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_targeted_attack_succeeds_when_it_reaches_the_target() -> None:
    torch.manual_seed(0)
    model = create_model("linear").eval()
    image = to_mnist(to_gray(_stroke_on_paper()))
    (clean,) = attack_image({"lin": model}, image, None, "FGSM", "linf", 0.01)
    target = (clean.pred_before + 1) % 10
    (out,) = attack_image({"lin": model}, image, None, "PGD", "linf", 0.3, target=target)
    assert out.target == target and out.success and out.pred_after == target  # reached, not merely moved
    (weak,) = attack_image({"lin": model}, image, None, "PGD", "linf", 0.001, 1, target=target)
    assert not weak.success and weak.pred_after != target
    assert "targeted at" in summary_markdown([out], "PGD", "linf", 0.3)
    for attack in ("APGD-CE", "CW-L2", "Square"):
        with pytest.raises(ValueError, match=f"{attack} is untargeted"):
            attack_image({"lin": model}, image, None, attack, "l2", 2.0, target=target)
    with pytest.raises(ValueError, match="is the true label"):
        attack_image({"lin": model}, image, 3, "PGD", "linf", 0.3, target=3)


def test_fooled_is_measured_against_the_true_label() -> None:
    torch.manual_seed(0)
    model = create_model("linear").eval()
    image = to_mnist(to_gray(_stroke_on_paper()))
    (auto,) = attack_image({"lin": model}, image, None, "PGD", "linf", 0.001, 1)
    assert not auto.success and not auto.labelled and auto.label == auto.pred_before
    wrong = (auto.pred_before + 1) % 10  # the user says the digit is another one: the model is wrong already
    (out,) = attack_image({"lin": model}, image, wrong, "PGD", "linf", 0.001, 1)
    assert out.labelled and out.label == wrong and out.success and out.pred_after != wrong
    text = summary_markdown([out], "PGD", "linf", 0.001)
    assert f"true label {wrong}" in text and "already wrong before the attack" in text
    assert "no true label given" in summary_markdown([auto], "PGD", "linf", 0.001)


def test_each_attack_and_norm_has_its_own_controls() -> None:
    pytest.importorskip("gradio", reason="the [demo] extra")
    from advmnist.demo.app import NO_TARGET, attack_changed, norm_changed

    steps, queries, target, norm = attack_changed("Square", "Linf")
    assert queries == {"visible": True, "minimum": 100, "maximum": 5000, "step": 100, "value": 1000}
    assert steps == {"visible": False} and target["interactive"] is False and target["value"] == NO_TARGET
    steps, queries, target, norm = attack_changed("CW-L2", "Linf")
    assert steps["visible"] and steps["value"] == 100 and not queries["visible"] and norm == {"value": "L2"}
    steps, _, target, norm = attack_changed("PGD", "L2")
    assert steps["value"] == 40 and target["interactive"] is True and norm == {"value": "L2"}
    assert norm_changed("L2")["maximum"] == 5.0 and norm_changed("L2")["value"] == 2.0
    assert norm_changed("Linf")["maximum"] == 0.5 and norm_changed("Linf")["value"] == 0.3
    assert "MNIST standard: 2" in norm_changed("L2")["label"]


def test_the_input_follows_the_user_and_picks_are_new_unless_seeded() -> None:
    pytest.importorskip("gradio", reason="the [demo] extra")
    from advmnist.demo.app import AUTO_LABEL, NO_TARGET, ModelShelf, Request, TestImages, run_request, source_changed
    from advmnist.errors import DataError

    assert source_changed("pick", "test image 8, label 9", 9, "9") == ("test image 8, label 9", "9")
    assert source_changed("draw", "test image 8, label 9", 9, "9") == ("", AUTO_LABEL)  # caption and label go
    assert source_changed("upload", "test image 8, label 9", 9, "4") == ("", "4")  # the user's own label stays
    test = TestImages(x=torch.rand(10_000, 1, 28, 28), y=torch.arange(10_000) % 10)
    assert len({test.pick(None)[2] for _ in range(5)}) > 1 and len({test.pick(" ")[2] for _ in range(5)}) > 1
    assert test.pick("5")[2] == test.pick(5)[2]
    with pytest.raises(ValueError, match="seed must be a whole number"):
        test.pick("abc")
    shelf = ModelShelf(loaded={"lin": create_model("linear")})

    def offline() -> torch.nn.Module:
        raise DataError("MNIST not found")

    shelf_offline = ModelShelf(loaded={"lin": create_model("linear")}, lazy={"baseline": offline})
    drawn = Request(
        "draw", {"composite": _stroke_on_paper()}, None, None, AUTO_LABEL, NO_TARGET, ["lin", "baseline"],
        "PGD", "Linf", 0.3, 5, 1000,
    )  # fmt: skip
    seen, figure, summary, status = run_request(shelf_offline, drawn, say=lambda _: None)
    assert "| lin |" in summary and "baseline" not in summary and "Left out: baseline: MNIST not found" in status
    assert shelf_offline.names() == ["lin", "baseline"]  # still offered: it may work next time
    empty = Request(
        "draw", {"composite": None}, None, None, AUTO_LABEL, NO_TARGET, ["lin"], "PGD", "Linf", 0.3, 40, 1000
    )
    assert run_request(shelf, empty, say=lambda _: None) == (
        None,
        None,
        "",
        "**Error:** the canvas is empty: draw a digit",
    )
