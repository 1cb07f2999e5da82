"""`bgshift <stage> ...`: the command line the Snakemake rules call, one subcommand per stage
(declared beside its handler in data.py, models.py and reports.py)."""
from __future__ import annotations

import argparse
import os
import sys

from .. import config as cfg
from ..accounting import AccountingError
from ..ingest import IngestError
from ..io import RESULTS_ENV, OutsideResults
from ..locks import LiveRun
from ..weights import BadWeights, UnsafeWeights
from . import data, models, reports  # noqa: F401  (each registers its commands)
from .registry import COMMANDS


def _literal(help_text: str) -> str:
    """Help texts here are prose: argparse %-formats them, so a '95%' would break `--help`."""
    return help_text.replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bgshift", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (func, help_text, takes_config, options) in COMMANDS.items():
        p = sub.add_parser(name, help=_literal(help_text))
        if takes_config:
            source = p.add_mutually_exclusive_group(required=True)
            source.add_argument("--config", help="config YAML/JSON file")
            source.add_argument("--config-json", help="config as a JSON string (what the Snakemake rules pass)")
        for flag, kwargs in options:
            p.add_argument(flag, **{**kwargs, "help": _literal(kwargs["help"])} if "help" in kwargs else kwargs)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault(RESULTS_ENV, "results")  # every output stays inside ./results (the rules' folder)
    try:
        args.func(args)
    except (cfg.ConfigError, IngestError, AccountingError, OutsideResults, FileNotFoundError, TimeoutError, LiveRun, BadWeights,
            UnsafeWeights) as exc:
        print(f"bgshift {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
