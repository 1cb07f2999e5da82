"""Load and validate the pipeline config before any job runs.

The JSON schema (workflow/schemas/config.schema.yaml) is the single source of the
allowed keys, their types and their defaults; validation fills the defaults in, so
stage code never guesses a missing value.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import model_grid

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"
# User-chosen names become folder names, wildcards and command-line arguments: no slashes,
# no shell metacharacters, no leading dot (the schema's $defs/name holds the same pattern).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
SAFE_NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or digit, at most 100 characters"
# Snakemake takes a wildcard value that ends in one piece repeated 20 or more times for an endless
# recursion and stops the DAG build (snakemake.io.PeriodicityDetector); such names are refused here.
PERIODIC = re.compile(r"(.+)\1{19,}$")


class ConfigError(ValueError):
    """A config problem, phrased for the person who wrote the config."""


def load_schema() -> dict:
    """The config schema (a fresh copy: the validator fills defaults from it)."""
    return copy.deepcopy(_parsed_schema())


@functools.lru_cache(maxsize=1)
def _parsed_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _with_defaults(validator_class):
    """A validator that fills `default` values in while it validates (the jsonschema FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        shared = [load_schema()["$defs"][part["$ref"].split("/")[-1]] for part in error.schema.get("allOf", []) if "$ref" in part]
        allowed = sorted({*error.schema.get("properties", {}), *(k for d in shared for k in d.get("properties", {}))})
        extra = sorted(set(error.instance) - set(allowed))
        where = key if error.absolute_path else "top level"
        return f"unknown key(s) {extra} under {where}; allowed: {allowed}"
    if error.validator == "enum":
        return f"{key}: {error.instance!r} is not one of {error.validator_value}"
    if error.validator == "pattern" and error.validator_value == SAFE_NAME.pattern.join("^$"):
        return _unsafe_name(error.instance, key)
    names = [e for e in error.context or [] if e.validator == "pattern"]
    if error.validator == "oneOf" and names:  # a name or a list of names (drop lists)
        return _describe(names[0])
    bounds = [e for e in error.context or [] if e.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")]
    if error.validator == "oneOf" and bounds:  # a number or a list of numbers, out of range
        return _describe(bounds[0])
    if error.validator == "type":
        return f"{key}: expected {error.validator_value}, got {type(error.instance).__name__} {error.instance!r}"
    return f"{key}: {error.message}"


def _unsafe_name(name, where: str) -> str:
    return f"{where}: {name!r} is not a safe name ({SAFE_NAME_RULE}); names become file names and command-line arguments"


def check_name(name: str, where: str) -> str:
    """`name` if it is a safe name, else a ConfigError naming where it came from (for names the
    schema cannot see: scene file stems, expanded variant names)."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise ConfigError(_unsafe_name(name, where))
    _refuse_periodic(name, where)
    return name


def _refuse_periodic(name: str, where: str) -> None:
    repeated = PERIODIC.search(name)
    if repeated:
        raise ConfigError(f"{where}: {name!r} ends in {repeated.group(1)!r} repeated {len(repeated.group(0)) // len(repeated.group(1))} "
                          f"times; Snakemake takes such a name for an endless recursion (at most 19 repeats)")


def validate(config: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """Return a validated copy of `config` with every default filled in.

    `partial` accepts a slice of sections (what a rule passes to its stage); a full
    config must name its dataset. Raises ConfigError naming each offending key.
    """
    _check_expanded_size(config)
    config = copy.deepcopy(dict(config))
    _expand_model_grids(config)
    _check_finite(config, "")
    validator = _Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_describe(e) for e in errors))
    if "dataset" in config:
        _check_paths(config["dataset"])
        _check_synthetic(config["dataset"]["synthetic"])
        _check_consistency(config)
    elif not partial:
        raise ConfigError("dataset: required (which dataset to read; see config/README.md)")
    return config


def _expand_model_grids(config: dict) -> None:
    """train.models with each model's setting lists expanded into one model per value (model_grid)."""
    models = config.get("train", {}).get("models") if isinstance(config.get("train"), dict) else None
    if not isinstance(models, dict):
        return
    try:
        expanded = model_grid.expand(models, model_grid.family_settings(_parsed_schema()))  # read only: no copy
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name, (origin, _) in expanded.items():
        if name != origin:
            check_name(name, f"train.models.{origin} (a model its grid expands to)")
    config["train"]["models"] = {name: settings for name, (_, settings) in expanded.items()}


MAX_CONFIG_VALUES = 1_000_000


def _check_expanded_size(value: Any) -> None:
    """Refuse a config that expands to more than MAX_CONFIG_VALUES values: YAML anchors and
    aliases (a "billion laughs") load as shared objects, and the first walk over them (the
    schema's) took 40-54 s and 3 GB before a MemoryError. Counted over shared objects once."""
    sizes: dict[int, int] = {}

    def size(item: Any) -> int:
        if not isinstance(item, (dict, list)):
            return 1
        if id(item) not in sizes:
            sizes[id(item)] = 0  # a cycle counts once
            children = item.values() if isinstance(item, dict) else item
            sizes[id(item)] = 1 + sum(size(child) for child in children)
            if sizes[id(item)] > MAX_CONFIG_VALUES:
                raise ConfigError(f"the config expands to more than {MAX_CONFIG_VALUES:,} values (YAML anchors and "
                                  f"aliases repeated within each other?)")
        return sizes[id(item)]

    size(value)


def _check_finite(value: Any, where: str) -> None:
    """No NaN or infinity anywhere (YAML reads .nan and .inf as numbers, and NaN passes every
    minimum and maximum of the schema), and no integer beyond 64 bits."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}.{index}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value} is not a finite number")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise ConfigError(f"{where}: {value} is out of range (a 64-bit integer)")


def _check_paths(dataset: dict, where: str = "dataset") -> None:
    kind = dataset["kind"]
    if kind == "sources":
        if not dataset.get("sources"):
            raise ConfigError(f"{where}.sources: kind sources needs at least one source")
        for name, source in dataset["sources"].items():
            _check_paths(source, f"{where}.sources.{name}")
        return
    needed = {"coco": ["images", "annotations"], "voc": ["root"], "yolo": ["data_yaml"], "synthetic": []}[kind]
    for key in needed:
        if not dataset.get(key):
            raise ConfigError(f"{where}.{key} is required when {where}.kind is {kind!r}")
        if not Path(dataset[key]).exists():
            raise ConfigError(f"{where}.{key}: path {dataset[key]!r} does not exist (relative paths resolve "
                              f"against the working directory, {Path.cwd()})")
        if key in ("annotations", "data_yaml") and not Path(dataset[key]).is_file():
            raise ConfigError(f"{where}.{key}: {dataset[key]!r} is a folder; name the file")
    if kind == "voc":
        for key in ("annotations_dir", "images_dir"):
            if not (Path(dataset["root"]) / dataset[key]).is_dir():
                raise ConfigError(f"{where}.{key}: folder {Path(dataset['root']) / dataset[key]} does not exist")


def _check_synthetic(world: dict) -> None:
    """What the schema cannot say: ranges in order, and names that refer to the world's own lists."""
    for key in ("objects_per_image", "background_objects", "object_scale", "herd_scale"):
        low, high = world[key]
        if low > high:
            raise ConfigError(f"dataset.synthetic.{key}: [{low}, {high}] is a reversed range; write [min, max]")
    for site, cls in world["home_classes"].items():
        if site not in world["sites"] or cls not in world["classes"]:
            raise ConfigError(f"dataset.synthetic.home_classes.{site}: {site!r} must be one of sites {world['sites']} "
                              f"and {cls!r} one of classes {world['classes']}")
    unknown = sorted(set(world["fully_labelled_sites"]) - set(world["sites"]))
    if unknown:
        raise ConfigError(f"dataset.synthetic.fully_labelled_sites: {unknown} are not among sites {world['sites']}")


# ultralytics train() arguments that bgshift passes itself (yolo.py): an augment key among them
# collided at train time (TypeError: got multiple values for keyword argument 'name')
YOLO_ARGUMENTS_SET_BY_BGSHIFT = {"data", "epochs", "imgsz", "batch", "optimizer", "lr0", "patience", "save_period", "seed",
                                 "deterministic", "device", "workers", "plots", "amp", "verbose", "project", "name",
                                 "exist_ok", "resume", "model"}


def _check_consistency(config: dict) -> None:
    """Settings that validate one by one but together could only fail late or produce nothing."""
    qc = config["segment"]["qc"]
    if qc["min_fill_ratio"] > qc["max_fill_ratio"]:
        raise ConfigError(f"segment.qc: min_fill_ratio {qc['min_fill_ratio']} is above max_fill_ratio "
                          f"{qc['max_fill_ratio']}: every image would fail QC")
    splits = config["splits"]
    shares = splits["ratios"]
    used = ("train", "val") if splits["method"] == "group" else ("train", "val", "test")
    if not any(shares.get(k, 0) > 0 for k in used):
        raise ConfigError(f"splits.ratios: every share of {list(used)} is 0; give train a positive share")
    if config["classify"]["challenge"]["backgrounds"] and not {"original", "only_bg_t"} <= set(config["sets"]["test"]):
        raise ConfigError("classify.challenge.backgrounds: the challenge puts test_original's objects on test_only_bg_t's "
                          "backgrounds; add original and only_bg_t to sets.test (and only_bg_t to variants.catalog)")
    window = config["evaluate"]["window"]
    if window["start"] is not None and window["stop"] is not None and window["start"] > window["stop"]:
        raise ConfigError(f"evaluate.window: start {window['start']} is after stop {window['stop']}: no checkpoint would be averaged")
    _check_names(config)
    for name, model in config["train"]["models"].items():
        taken = sorted(set(model.get("augment") or {}) & YOLO_ARGUMENTS_SET_BY_BGSHIFT)
        if model["family"] == "yolo" and taken:
            raise ConfigError(f"train.models.{name}.augment: {taken} are set by bgshift itself (the model's own keys, "
                              f"or the run's folder, device and seed); augment takes augmentation arguments only")


def _check_names(config: dict) -> None:
    """Names become folders and wildcards: two that differ only in case are one folder on macOS and
    Windows, and a periodic one stops Snakemake."""
    namespaces = {"sets.train": list(config["sets"]["train"]), "sets.test": list(config["sets"]["test"]) + list(config["sets"]["pooled"]),
                  "train.models": list(config["train"]["models"]), "drops": list(config["drops"]),
                  "findings.claims": list(config["findings"]["claims"]), "variants.catalog": list(config["variants"]["catalog"])}
    for where, names in namespaces.items():
        folded: dict[str, str] = {}
        for name in names:
            _refuse_periodic(name, where)
            if name.casefold() in folded:
                raise ConfigError(f"{where}: {folded[name.casefold()]!r} and {name!r} differ only in case; they would "
                                  f"share one folder on case-insensitive file systems")
            folded[name.casefold()] = name


def load(path: str | Path) -> dict:
    """Read a YAML or JSON config file safely and validate it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    return validate(raw)


def loads_json(text: str) -> dict:
    """A rule's slice of an already validated config."""
    return validate(json.loads(text), partial=True)
