"""The argument parser: each command module registers its own sub-command."""

from __future__ import annotations

import argparse

from advmnist.cli import bench, evaluate, misc, study, train
from advmnist.cli.common import Parser, common_options


def build_parser() -> argparse.ArgumentParser:
    from advmnist.manifest import package_version

    common = common_options()
    parser = Parser(prog="advmnist", description="Train, attack, defend and report on MNIST classifiers.")
    parser.add_argument("--version", action="version", version=f"advmnist {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in (misc, train, evaluate, study, bench):
        module.register(sub, common)
    return parser
