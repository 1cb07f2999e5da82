"""config/README.md, the reference of every config key, generated from the schema
(`bgshift config-doc > config/README.md`; a test keeps the file current)."""
from __future__ import annotations

import json

from .config import load_schema
from .model_grid import properties_of


def _rows(schema: dict, prefix: str = "", defs: dict | None = None):
    defs = schema.get("$defs", {}) if defs is None else defs
    for name, sub in properties_of(schema, defs).items():
        if "$ref" in sub:  # a shared definition, with this key's own overrides on top
            sub = {**defs[sub["$ref"].split("/")[-1]], **{k: v for k, v in sub.items() if k != "$ref"}}
        key = f"{prefix}{name}"
        kind = sub.get("type") or ("one of " + ", ".join(map(str, sub["enum"])) if "enum" in sub else "number or list" if "oneOf" in sub else "")
        kind = "/".join(kind) if isinstance(kind, list) else kind
        if "enum" in sub and sub.get("type"):
            kind += " (" + ", ".join(map(str, sub["enum"])) + ")"
        if kind == "array" and "enum" in sub.get("items", {}):
            kind += " of " + ", ".join(sub["items"]["enum"])
        default = json.dumps(sub["default"]) if "default" in sub else "required" if name in schema.get("required", []) else "-"
        yield key, kind, default, " ".join(sub.get("description", "").split())
        if sub.get("properties"):
            yield from _rows(sub, key + ".", defs)


def reference_markdown() -> str:
    """config/README.md's key table, generated from the schema so the two never disagree."""
    lines = [
        "# Configuration reference",
        "",
        "`config/config.yaml` is the embedded demo; pass your own with `snakemake --configfile my.yaml`.",
        "Every key is validated against `workflow/schemas/config.schema.yaml` before any job runs:",
        "an unknown key, a wrong type or a missing input path stops the run with a message naming the key.",
        "Keys left out take the defaults below. Examples for real datasets and the studies are in `config/examples/`.",
        "",
        "This file is generated: `bgshift config-doc > config/README.md` (a test checks it is current).",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    schema = load_schema()
    rows = list(_rows(schema))
    for family in ("yolo_model", "frcnn_model", "retinanet_model", "classifier_model"):  # keys of one entry of train.models
        rows += list(_rows(schema["$defs"][family], f"train.models.<{family.split('_')[0]} model>.", schema["$defs"]))
    rows += list(_rows(schema["$defs"]["claim"], "findings.claims.<claim>.", schema["$defs"]))
    rows += list(_rows(schema["$defs"]["claim_term"], "findings.claims.<claim>.plus[] / minus[].", schema["$defs"]))
    for key, kind, default, text in rows:
        lines.append(f"| `{key}` | {kind} | `{default}` | {text} |".replace("``", ""))
    return "\n".join(lines + CLAIMS_GUIDE) + "\n"


CLAIMS_GUIDE = """
## Claims (`findings:`)

A claim says what a study expects, written before the runs. Its effect is `sum(plus) - sum(minus)`,
computed per seed on the metrics-table cells its terms name, then judged with every other claim
of the findings run (docs/findings.md says how). A term is one cell (model x training set x test
set at the claim's metric), the mean of several (a list in `model`, `trainset` or `testset`), or a
constant `value`; `cells` gives defaults for every term.

```yaml
findings:
  claims:
    bg_gap:                      # BG-gap > 0: AP50 on mixed_same above mixed_rand
      metric: AP50
      expect: greater
      cells: {model: frcnn, trainset: original}
      plus: [{testset: test_mixed_same}]
      minus: [{testset: test_mixed_rand}]
    narrower_after_colour:       # a difference of differences
      metric: AP50
      expect: greater
      plus: [{trainset: original, testset: test_original}, {trainset: colour, testset: [test_bg_color_red, test_bg_color_blue]}]
      minus: [{trainset: original, testset: [test_bg_color_red, test_bg_color_blue]}, {trainset: colour, testset: test_original}]
    above_chance:                # a constant
      metric: accuracy
      expect: greater
      cells: {trainset: original, testset: test_only_bg_t}
      plus: [{}]
      minus: [{value: 0.3333}]
    grey_costs_nothing:          # an equivalence claim
      metric: AP50
      margin: 0.05
      cells: {trainset: original}
      plus: [{testset: test_original}]
      minus: [{testset: test_bg_gray}]
```

Every cell is checked against what the config plans before any job runs (model, training set,
test set, a metric of the model's task, window claims on `evaluate.sweep_test_sets`).
`bgshift findings --configs a.yaml b.yaml --out results/study` judges the claims of several
configs together (make study).""".splitlines()
