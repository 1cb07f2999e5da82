"""The claims a config declares (its `findings:` section), as contrasts between cells of the
metrics table, and their check against what the config plans to train and test.

A claim's effect is  sum(plus terms) - sum(minus terms);  a term is one cell (model x
training set x test set, at the claim's metric), the mean of several (a list in any of the
three), or a constant `value`, each times its `weight`. So a BG-gap is one plus and one minus
term, a difference of differences two of each, a chance-level claim a constant minus term.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..config import ConfigError
from ..metric_names import AP_PER_IOU, LOSS_METRICS, SALIENCY_METRICS
from ..pretrained import PRETRAINED

DETECTION_METRICS = {"AP", "AP50", "AP75", *AP_PER_IOU, "count_mae", "fp_per_image", *SALIENCY_METRICS, *LOSS_METRICS}
CLASSIFICATION_METRICS = {"accuracy", "challenge_accuracy", *SALIENCY_METRICS, *LOSS_METRICS}


def metric_family(metric: str) -> str:
    """'AP50/sheep' -> 'AP50': the kind of metric, whatever its class."""
    return metric.split("/", 1)[0]


@dataclass(frozen=True)
class Cell:
    model: str
    trainset: str
    testset: str
    metric: str


@dataclass(frozen=True)
class Term:
    """weight x (the mean of `cells`, or `value` when there is no cell)."""

    cells: tuple[Cell, ...]
    weight: float
    value: float | None


@dataclass(frozen=True)
class Claim:
    name: str
    title: str
    metric: str
    checkpoint: str  # best | window
    expect: str | None  # greater | less; None for an equivalence claim
    margin: float | None
    reference: str
    plus: tuple[Term, ...]
    minus: tuple[Term, ...]

    @property
    def cells(self) -> list[Cell]:
        return [cell for term in self.plus + self.minus for cell in term.cells]

    @property
    def kind(self) -> str:
        return f"within ±{self.margin:g}" if self.margin is not None else f"effect {'>' if self.expect == 'greater' else '<'} 0"


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _term(claim: str, raw: dict, defaults: dict, metric: str, models: list[str]) -> Term:
    if "value" in raw:
        return Term((), float(raw.get("weight", 1.0)), float(raw["value"]))
    merged = {**defaults, **{k: v for k, v in raw.items() if k in ("model", "trainset", "testset", "metric")}}
    if "model" not in merged:
        if len(models) != 1:
            raise ConfigError(f"findings.claims.{claim}: name the model (in `cells` or the term); models: {models}")
        merged["model"] = models[0]
    for key in ("trainset", "testset"):
        if key not in merged:
            raise ConfigError(f"findings.claims.{claim}: a term names no {key} (in `cells` or the term itself)")
    cells = tuple(Cell(m, tr, te, merged.get("metric", metric)) for m, tr, te in
                  itertools.product(_as_list(merged["model"]), _as_list(merged["trainset"]), _as_list(merged["testset"])))
    return Term(cells, float(raw.get("weight", 1.0)), None)


def parse(declared: dict, models: list[str]) -> list[Claim]:
    """The claims of a config's findings.claims, in the order it declares them; `models`: train.models' names."""
    claims = []
    for name, raw in declared.items():
        if ("expect" in raw) == ("margin" in raw):
            raise ConfigError(f"findings.claims.{name}: give either expect (greater or less: a direction) or margin "
                              "(an equivalence claim), not both or neither")
        defaults = raw.get("cells", {})
        plus = tuple(_term(name, t, defaults, raw["metric"], models) for t in raw["plus"])
        minus = tuple(_term(name, t, defaults, raw["metric"], models) for t in raw.get("minus", []))
        claims.append(Claim(name, raw.get("title", name.replace("_", " ")), raw["metric"], raw.get("checkpoint", "best"),
                            raw.get("expect"), raw.get("margin"), raw.get("reference", ""), plus, minus))
    return claims


def check(config: dict, claims: list[Claim], trained: list[str], tested: list[str], tasks: dict[str, str],
          sets_of: dict[str, list[str]] | None = None) -> None:
    """Every cell of every claim is planned: its model, training set and test set exist, its metric
    fits the model's task, and a window claim's test set is evaluated at every checkpoint. An
    model's runs are on `sets_of[model]` where given (its own sets; "pretrained" alone for an
    evaluate-only model), else on every trained set."""
    sweep = {f"test_{name}" for name in config["evaluate"]["sweep_test_sets"]}
    for claim in claims:
        where = f"findings.claims.{claim.name}"
        if not claim.cells:
            raise ConfigError(f"{where}: no term names a cell of the metrics table (only constants)")
        for cell in claim.cells:
            if cell.model not in tasks:
                raise ConfigError(f"{where}: model {cell.model!r} is not among train.models {sorted(tasks)}")
            runs_of = (sets_of or {}).get(cell.model, trained)
            if cell.trainset not in runs_of:
                raise ConfigError(f"{where}: {cell.model} has no run on {cell.trainset!r} (its training sets: {runs_of})")
            split = LOSS_METRICS.get(metric_family(cell.metric))
            if split and (cell.testset != split or "/" not in cell.metric):
                raise ConfigError(f"{where}: {cell.metric!r} is a run's loss: name its component ({metric_family(cell.metric)}/<component>) "
                                  f"and testset {split!r}")
            if not split and cell.testset not in tested:
                raise ConfigError(f"{where}: test set {cell.testset!r} is not tested (test sets: {tested})")
            valid = CLASSIFICATION_METRICS if tasks[cell.model] == "classification" else DETECTION_METRICS
            if metric_family(cell.metric) not in valid:
                raise ConfigError(f"{where}: metric {cell.metric!r} is not one of {cell.model}'s ({tasks[cell.model]}): "
                                  f"{sorted(valid)}, optionally /<class>")
            if metric_family(cell.metric) in SALIENCY_METRICS:
                _check_saliency(config, claim, cell, where)
            if claim.checkpoint == "window" and runs_of == [PRETRAINED]:
                raise ConfigError(f"{where}: {cell.model} is evaluated as it is, one checkpoint: it has no window")
            if claim.checkpoint == "window" and cell.testset not in sweep:
                raise ConfigError(f"{where}: checkpoint window needs {cell.testset} at every checkpoint: add "
                                  f"{cell.testset.removeprefix('test_')!r} to evaluate.sweep_test_sets")


def _check_saliency(config: dict, claim: Claim, cell: Cell, where: str) -> None:
    """A saliency metric is measured on the best checkpoint, over all classes, where maps are drawn."""
    drawn = config["evaluate"]["saliency"]
    if "/" in cell.metric or claim.checkpoint != "best":
        raise ConfigError(f"{where}: {cell.metric!r} is measured on the best checkpoint over all classes (no /<class>, no window)")
    if not drawn["images"] or (drawn["test_sets"] is not None and cell.testset.removeprefix("test_") not in drawn["test_sets"]):
        raise ConfigError(f"{where}: {cell.metric} on {cell.testset} needs saliency maps there: set evaluate.saliency.images "
                          f"above 0 and list {cell.testset.removeprefix('test_')!r} in evaluate.saliency.test_sets (or null: all)")
