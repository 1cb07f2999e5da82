"""Training curves: every loss component of every run (torchvision's loss dict, the classifier's
cross-entropy, YOLO's box/cls/dfl from its results.csv; bgshift.training_losses reads them), one
picture per model with a panel per component and a line per training set (mean over seeds,
band = ± std) and the val loss at each checkpoint: where the deck's correlated-class experiment
reads its RPN-loss gap."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..training_losses import COLUMNS, YOLO_COMPONENTS, run_losses
from .plots import plt, save_png

def smoothed(values: pd.Series) -> pd.Series:
    """A centred running mean over about a twentieth of the run (iteration losses are noisy)."""
    return values.rolling(max(1, len(values) // 20), center=True, min_periods=1).mean()


def plot_model(frame: pd.DataFrame, model: str, path: Path) -> None:
    rows = frame[frame.model == model]
    components = sorted(rows.component.unique())
    fig, axes = plt.subplots(1, len(components), figsize=(3.6 * len(components), 3.0), squeeze=False)
    for ax, component in zip(axes[0], components):
        for trainset, group in rows[rows.component == component].groupby("trainset"):
            train, val = group[group.split == "train"], group[group.split == "val"]
            per_seed = train.pivot_table(index="step", columns="seed", values="value").apply(smoothed)
            mean, spread = per_seed.mean(axis=1), per_seed.std(axis=1).fillna(0)
            line, = ax.plot(mean.index, mean, label=f"{trainset} ({per_seed.shape[1]} seeds)")
            ax.fill_between(mean.index, mean - spread, mean + spread, alpha=0.2, color=line.get_color())
            if len(val):  # the val loss at each checkpoint, mean over seeds
                at = val.groupby("step").value.mean()
                ax.plot(at.index, at, "o--", color=line.get_color(), markersize=3, linewidth=0.8, label=f"{trainset} val")
        ax.set_title(component, fontsize=9)
        ax.set_xlabel("epoch" if component in YOLO_COMPONENTS else "iteration")
        ax.legend(fontsize=7)
    fig.suptitle(f"{model}: loss components (train smoothed, mean ± std over seeds; dots: val at checkpoints)", fontsize=10)
    save_png(fig, path)


def curves(done_files: list[str | Path], out_dir: str | Path) -> list[str]:
    """results/plots/curves/<model>.png for every trained model; returns the models drawn."""
    frames = [run_losses(Path(p)) for p in done_files]
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else pd.DataFrame(columns=COLUMNS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    models = sorted(frame.model.unique())
    for model in models:
        plot_model(frame, model, out_dir / f"{model}.png")
    return [str(m) for m in models]

