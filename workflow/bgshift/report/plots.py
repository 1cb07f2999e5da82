"""Metric plots from the scored evaluations: AP by training set and by drop scheme, count MAE
over checkpoints, TIDE's error mix per test set, AP across IoU thresholds (matplotlib, written
without timestamps)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from .. import metric_names  # noqa: E402
from ..metric_names import AP_PER_IOU, IOU_PERCENTS  # noqa: E402
from .tables import TIDE_MAIN, load_metrics  # noqa: E402


def save_png(fig, path: Path) -> None:
    """Write a figure as PNG atomically, with no timestamp (same data, same bytes), and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def plot_by_trainset(frame: pd.DataFrame, path: Path) -> None:
    """Bars: each model's score (AP for detectors, accuracy for classifiers) per training set
    (groups) and test set (bars), error bars = std over seeds."""
    best = frame[(frame.checkpoint == "best") & frame.metric.isin(["AP", "accuracy"])]
    models = sorted(best.model.unique())
    fig, axes = plt.subplots(len(models) or 1, 1, figsize=(max(6, 0.9 * best.testset.nunique() * best.trainset.nunique()), 3.2 * max(1, len(models))), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        metric = "AP" if (best[best.model == model].metric == "AP").any() else "accuracy"
        rows = best[(best.model == model) & (best.metric == metric)]
        stats = rows.groupby(["trainset", "testset"])["value"].agg(["mean", "std"]).fillna(0).reset_index()
        trainsets, testsets = sorted(stats.trainset.unique()), sorted(stats.testset.unique())
        width = 0.8 / max(1, len(testsets))
        for j, test in enumerate(testsets):
            sub = stats[stats.testset == test].set_index("trainset").reindex(trainsets)
            ax.bar(np.arange(len(trainsets)) + j * width, sub["mean"], width, yerr=sub["std"], label=test.removeprefix("test_"), capsize=2)
        ax.set_xticks(np.arange(len(trainsets)) + 0.4 - width / 2, trainsets)
        ax.set_ylabel(metric)
        ax.set_title(f"{model}: {metric} by training set and test set (best checkpoint)")
        ax.legend(fontsize=7, ncol=4)
    save_png(fig, path)


def plot_by_drop(frame: pd.DataFrame, drop_of: dict[str, str], path: Path) -> None:
    """AP on the original test images against the drop scheme of the training set."""
    best = frame[(frame.checkpoint == "best") & (frame.metric == "AP") & (frame.testset == "test_original")]
    best = best.assign(drop=best.trainset.map(drop_of))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for (model, variants), group in best.groupby(["model", best.trainset.map(lambda s: "masked" if "mask" in s else "plain")]):
        stats = group.groupby("drop")["value"].agg(["mean", "std"]).fillna(0)
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=f"{model} ({variants})")
    ax.set_xlabel("drop scheme of the training set")
    ax.set_ylabel("AP on test_original")
    ax.legend(fontsize=8)
    save_png(fig, path)


def plot_mae_by_checkpoint(frame: pd.DataFrame, path: Path) -> None:
    """Count MAE against training step (iteration or epoch) on the swept test sets, mean over seeds."""
    rows = frame[(frame.metric == "count_mae") & (frame.checkpoint != "best") & frame.step.notna()]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for (model, trainset, testset), group in rows.groupby(["model", "trainset", "testset"]):
        stats = group.groupby("step")["value"].mean()
        ax.plot(stats.index, stats.values, marker=".", label=f"{model} / {trainset} on {testset.removeprefix('test_')}")
    ax.set_xlabel("checkpoint step (iteration or epoch)")
    ax.set_ylabel("count MAE")
    ax.legend(fontsize=7)
    save_png(fig, path)


def plot_ap_by_iou(frame: pd.DataFrame, path: Path) -> None:
    """AP against the IoU threshold (.50 to .95), one line per training set (mean over seeds, band
    = ± std), one panel per detector, on test_original (else the first test set): the BRL paper's
    Fig 3, where a better loss shows as a curve that stays up at strict thresholds."""
    best = frame[(frame.checkpoint == "best") & frame.metric.isin(AP_PER_IOU)]
    testset = "test_original" if (best.testset == "test_original").any() else (sorted(best.testset.unique()) or [""])[0]
    best = best[best.testset == testset]
    models = sorted(best.model.unique()) or ["no detector"]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for trainset, rows in best[best.model == model].groupby("trainset"):
            stats = rows.groupby("metric")["value"].agg(["mean", "std"]).reindex(list(AP_PER_IOU)).fillna(0)
            iou = np.array(IOU_PERCENTS) / 100
            ax.plot(iou, stats["mean"], marker="o", markersize=3, label=trainset)
            ax.fill_between(iou, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2)
        ax.set_xlabel("IoU threshold")
        ax.set_ylabel(f"AP on {testset}")
        ax.set_ylim(0, 1)
        ax.set_title(f"{model}: AP across IoU thresholds (best checkpoint)", fontsize=9)
        ax.legend(fontsize=7, title="training set", title_fontsize=7)
    save_png(fig, path)


def plot_per_class(frame: pd.DataFrame, family: str, classes: list[str] | None, path: Path) -> None:
    """Grouped bars: each class's `family` metric (AP, count_mae, accuracy) per test set, one panel
    per model and training set, mean over seeds with ± std: which classes carry a background effect."""
    best = frame[(frame.checkpoint == "best") & frame.metric.str.startswith(f"{family}/")]
    best = best.assign(cls=best.metric.str.removeprefix(f"{family}/"))
    if classes is not None:
        best = best[best.cls.isin(classes)]
    panels = sorted(best.groupby(["model", "trainset"]).groups) or [("no model", "")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6, 0.5 * best.cls.nunique() * max(1, best.testset.nunique())), 3 * len(panels)), squeeze=False)
    for ax, (model, trainset) in zip(axes[:, 0], panels):
        stats = best[(best.model == model) & (best.trainset == trainset)].groupby(["cls", "testset"])["value"].agg(["mean", "std"]).fillna(0)
        names, tests = sorted(stats.index.unique(0)), sorted(stats.index.unique(1)) if len(stats) else []
        width = 0.8 / max(1, len(tests))
        for j, test in enumerate(tests):
            sub = stats.xs(test, level="testset").reindex(names)
            ax.bar(np.arange(len(names)) + j * width, sub["mean"], width, yerr=sub["std"], capsize=2, label=test.removeprefix("test_"))
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(family)
        ax.set_title(f"{model} / {trainset}: {family} per {metric_names.part_of(family)} (best checkpoint, mean ± std over seeds)", fontsize=9)
        ax.legend(fontsize=7, ncol=4)
    save_png(fig, path)


def plot_tide(frame: pd.DataFrame, path: Path) -> None:
    """Stacked bars: TIDE's main errors (dAP50, mean over seeds) per test set, one panel per model
    and training set, so the error mix of each background variant sits beside test_original's."""
    best = frame[(frame.checkpoint == "best") & frame.metric.isin([f"tide/{e}" for e in TIDE_MAIN])]
    panels = sorted(best.groupby(["model", "trainset"]).groups) or [("no detector", "")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6, 0.7 * best.testset.nunique() + 2), 2.8 * len(panels)), squeeze=False)
    for ax, (model, trainset) in zip(axes[:, 0], panels):
        rows = best[(best.model == model) & (best.trainset == trainset)]
        means = rows.assign(error=rows.metric.str.removeprefix("tide/")).pivot_table(index="testset", columns="error", values="value")
        bottom = np.zeros(len(means))
        for error in TIDE_MAIN:
            values = means[error].to_numpy() if error in means else np.zeros(len(means))
            ax.bar(range(len(means)), values, bottom=bottom, label=error)
            bottom += values
        ax.set_xticks(range(len(means)), [t.removeprefix("test_") for t in means.index], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("dAP50")
        ax.set_title(f"{model} / {trainset}: TIDE errors by test set (best checkpoint, mean over seeds)", fontsize=9)
        ax.legend(fontsize=7, ncol=6)
    save_png(fig, path)


def plots(metric_files: list[str | Path], out_dir: str | Path, drop_of: dict[str, str],
          per_class: dict[str, list[str] | None] | None = None) -> None:
    """Every plot; `per_class`: the per-class families table_metrics names (tables.per_class_names)."""
    out_dir = Path(out_dir)
    frame = load_metrics(metric_files)
    for family, classes in (per_class or {}).items():
        plot_per_class(frame, family, classes, out_dir / f"per_class_{family}.png")
    plot_by_trainset(frame, out_dir / "ap_by_trainset.png")
    plot_by_drop(frame, drop_of, out_dir / "ap_by_drop_scheme.png")
    plot_mae_by_checkpoint(frame, out_dir / "mae_by_checkpoint.png")
    plot_tide(frame, out_dir / "tide_errors.png")
    plot_ap_by_iou(frame, out_dir / "ap_by_iou.png")
