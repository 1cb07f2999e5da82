"""Setting grids for models: a list where a model's setting takes one value names one model per
value, as variant grids do, so an ablation table is one config entry.

    retina_brl: {family: retinanet, loss: brl, confusion_weight: [1.0, 0.5, 0.1]}
    -> retina_brl_confusion_weight1, retina_brl_confusion_weight0.5, retina_brl_confusion_weight0.1

Several lists give their product, keys in sorted order in the name. A setting whose own type is a
list is never a grid, and neither is `family`.
"""
from __future__ import annotations

import itertools


def properties_of(schema: dict, defs: dict) -> dict:
    """A schema's own properties, then those of the definitions it includes by allOf (recursively)."""
    shared = [properties_of(defs[part["$ref"].split("/")[-1]], defs) for part in schema.get("allOf", []) if "$ref" in part]
    return {**schema.get("properties", {}), **{k: v for d in shared for k, v in d.items()}}


def family_settings(schema: dict) -> dict[str, dict]:
    """Family -> its model settings' schemas (from the config schema's <family>_model definitions)."""
    defs = schema["$defs"]
    return {name[: -len("_model")]: properties_of(defs[name], defs) for name in defs if name.endswith("_model")}


def _takes_a_list(setting_schema: dict) -> bool:
    kind = setting_schema.get("type", [])
    return "array" in (kind if isinstance(kind, list) else [kind])


def _label(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def expand(models: dict, settings_of_family: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """Model name -> (the entry it came from, its settings), one per point of each model's grid;
    a model without a grid keeps its name."""
    expanded = {}
    for name, model in models.items():
        known = settings_of_family.get(model.get("family") if isinstance(model, dict) else None)
        if known is None:  # not a mapping or an unknown family: the schema says what is wrong
            expanded[name] = (name, model)
            continue
        grid = {key: value for key, value in model.items()
                if isinstance(value, list) and key != "family" and key in known and not _takes_a_list(known[key])}
        keys = sorted(grid)
        for values in itertools.product(*(grid[key] for key in keys)):
            suffix = "".join(f"_{key}{_label(value)}" for key, value in zip(keys, values))
            if name + suffix in expanded or (suffix and name + suffix in models):
                raise ValueError(f"train.models.{name}: its grid names {name + suffix!r}, which another model already has")
            expanded[name + suffix] = (name, {**model, **dict(zip(keys, values))})
    return expanded
