"""The names of the metrics `score` writes, so a config's metric names are checked when a run
is planned (before any job) without importing the scorers. metrics.py writes these names."""
from __future__ import annotations

from .config import ConfigError

STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]  # COCOeval's stats
TIDE_ERRORS = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss", "FalsePos", "FalseNeg")
IOU_PERCENTS = tuple(range(50, 100, 5))  # COCO's IoU thresholds .50:.05:.95
AP_PER_IOU = tuple(f"AP_iou{t}" for t in IOU_PERCENTS)  # AP at one IoU threshold (the BRL paper's Fig 3)
# at the score threshold: the share of objects found (IoU >= .5) and how many boxes a model puts out
THRESHOLD_METRICS = ("recall50", "predictions_per_image")
# the saliency maps' share of mass on the objects, and the objects' share of the picture (bgshift.saliency)
SALIENCY_METRICS = ("fg_attention", "fg_area")
WRITTEN = {
    "detection": [*STAT_NAMES, *AP_PER_IOU, "count_mae", "fp_per_image", *THRESHOLD_METRICS, *(f"tide/{e}" for e in TIDE_ERRORS),
                  *SALIENCY_METRICS],
    "classification": ["accuracy", "challenge_accuracy", *SALIENCY_METRICS],
}
PER_CLASS = {"detection": ("AP", "count_mae"), "classification": ("accuracy",)}  # also written as <metric>/<class>
# <name>/<component> of a trained run (bgshift.training_losses), and the "test set" each sits at: no test image varies them
LOSS_METRICS = {"loss": "train", "val_loss": "val"}
USUAL = {"detection": ["AP", "AP50", "AP75", "count_mae", "fp_per_image", *THRESHOLD_METRICS], "classification": ["accuracy", "challenge_accuracy"]}


def check(names: list[str], tasks: set[str], where: str) -> None:
    """Every name is a metric some planned model's task writes (per class: `<metric>/<class>`)."""
    valid = [n for task in sorted(tasks) for n in WRITTEN[task]]
    per_class = [f"{m}/<class>" for task in sorted(tasks) for m in PER_CLASS[task]] + [f"{m}/<component>" for m in LOSS_METRICS]
    for name in names:
        family, slash, cls = name.partition("/")
        known = name in valid or bool(slash and cls and (family in LOSS_METRICS or any(family in PER_CLASS[t] for t in tasks)))
        if not known:
            raise ConfigError(f"{where}: unknown metric {name!r}; the planned models ({', '.join(sorted(tasks))}) "
                              f"write {', '.join(valid + per_class)}")


def part_of(family: str) -> str:
    """What the part after the slash names: a loss's component, else a class."""
    return "component" if family in LOSS_METRICS else "class"


def usual(present: set[str]) -> list[str]:
    """The usual table metrics among those present (evaluate.table_metrics: null)."""
    return [name for task in ("detection", "classification") for name in USUAL[task] if name in present]
