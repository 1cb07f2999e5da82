"""Sets: named training and test datasets assembled from variants (their definitions).

A training set is one or more variants x a drop scheme, over the train and val splits
(val keeps every annotation, so model selection sees complete labels); `repeat: k`
builds the data-size-matched baselines (x2, x5, ...). A test set is one variant of the
test split with all annotations, named `test_<variant>`, or a pooled one (sets.pooled) that
holds each test image once per listed variant, named `test_<name>`. The workflow plans its jobs from
these definitions at every start, so this module stays light (bgshift.export writes sets).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

# Xiao et al.'s backgrounds challenge: a classifiers' test set made by the crops stage.
CHALLENGE_SET = "test_challenge"


@dataclass(frozen=True)
class SetSpec:
    name: str
    variants: tuple[str, ...]
    splits: tuple[str, ...]
    drop: str
    repeat: int


def resolve(config: dict, variant_names: list[str]) -> list[SetSpec]:
    """Every set of the config, checked against the defined variants and drop schemes."""
    sets_cfg = config["sets"]
    specs = []
    for name, s in sets_cfg["train"].items():
        unknown = [v for v in s["variants"] if v not in variant_names]
        if unknown:
            raise ValueError(f"sets.train.{name}.variants: {unknown} are not defined variants; defined: {variant_names}")
        if s["drop"] not in config["drops"]:
            raise ValueError(f"sets.train.{name}.drop: {s['drop']!r} is not a scheme under drops; defined: {sorted(config['drops'])}")
        specs.append(SetSpec(name, tuple(s["variants"]), ("train", "val"), s["drop"], s["repeat"]))
    for variant in sets_cfg["test"]:
        if variant not in variant_names:
            raise ValueError(f"sets.test: {variant!r} is not a defined variant; defined: {variant_names}")
        specs.append(SetSpec(f"test_{variant}", (variant,), ("test",), "normal", 1))
    for name, s in sets_cfg.get("pooled", {}).items():  # a slice of the config may leave it out
        unknown = [v for v in s["variants"] if v not in variant_names]
        if unknown:
            raise ValueError(f"sets.pooled.{name}.variants: {unknown} are not defined variants; defined: {variant_names}")
        specs.append(SetSpec(f"test_{name}", tuple(s["variants"]), ("test",), "normal", 1))
    names = [s.name for s in specs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(f"sets: duplicate set names {clash}")
    return specs


def definitions(config: dict) -> dict[str, dict]:
    """Every set's definition: its spec and what its variants are made of (seed, JPEG quality,
    each variant's family and parameters; for mixed_* where donors come from, the image's own
    split since 2026-12-03, so sets built before that are exported again). A set's export
    depends on exactly this and the upstream tables, so it is also what the export records in
    its summary.json."""
    from .variants import expand
    from .variants.families import DONORS, FAMILIES

    variants = {v.name: v for v in expand(config["variants"])}
    return {spec.name: {**asdict(spec), "made_of": {
        "seed": config["seed"], "jpeg_quality": config["variants"]["jpeg_quality"],
        "variants": {v: {"family": variants[v].family, "params": variants[v].params,
                         **({"donors": "same split"} if DONORS in FAMILIES[variants[v].family].needs else {})} for v in spec.variants}}}
        for spec in resolve(config, list(variants))}


def trained_sets(config: dict, definitions_: dict[str, dict]) -> list[str]:
    """The sets models train on: train.sets, or every set with a training split."""
    return config["train"]["sets"] or [name for name, d in definitions_.items() if "train" in d["splits"]]


def spec_of(definition: dict) -> SetSpec:
    """The SetSpec of one entry of `definitions` (as read back from JSON)."""
    return SetSpec(definition["name"], tuple(definition["variants"]), tuple(definition["splits"]), definition["drop"],
                   definition["repeat"])


def set_names(config: dict) -> list[str]:
    return list(definitions(config))
