"""The CLI's registry: each command declared once, beside its handler (`@command`), with the
options the Snakemake rule passes; shared option declarations; reading a command's config."""
from __future__ import annotations

import argparse
from typing import Callable

from .. import config as cfg

# name -> (handler, help, takes a config, options as (flag, argparse keywords))
COMMANDS: dict[str, tuple[Callable, str, bool, list]] = {}


def command(name: str, help_text: str, takes_config: bool, options: list | None = None) -> Callable:
    """Register a handler as `bgshift <name>`."""
    def register(handler: Callable) -> Callable:
        COMMANDS[name] = (handler, help_text, takes_config, options or [])
        return handler
    return register


def load_config(args: argparse.Namespace) -> dict:
    """The command's config: the rule's JSON slice (--config-json) or a config file (--config)."""
    if args.config_json:
        return cfg.loads_json(args.config_json)
    return cfg.load(args.config)


# where a training or detection job runs; no part of its config (a Snakemake resource)
DEVICE = ("--device", {"choices": ["auto", "cpu"], "default": "auto", "help": "auto: a free GPU (by lock) else the CPU"})
# segmentation's torch device: segment.deeplabv3.device, a resource of its jobs
TORCH_DEVICE = ("--device", {"default": "auto", "help": "auto (a free GPU by lock, else the CPU), cpu, cuda or cuda:N"})
