"""Training curves: every loss component of every run (torchvision's loss dict, the classifier's
cross-entropy, YOLO's box/cls/dfl from its results.csv), one picture per model with a panel per
component and a line per training set (mean over seeds, band = ± std): where the deck's
correlated-class experiment reads its RPN-loss gap."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .plots import plt, save_png

YOLO_COMPONENTS = {"train/box_loss": "box_loss", "train/cls_loss": "cls_loss", "train/dfl_loss": "dfl_loss"}
COLUMNS = ["model", "trainset", "seed", "step", "component", "value"]


def run_losses(done_path: Path) -> pd.DataFrame:
    """One run's loss components per step (iteration, or epoch for YOLO); none for an adopted model."""
    done = json.loads(done_path.read_text())
    run_dir, key = done_path.parent, (done.get("model"), done.get("set"), done.get("seed"))
    if done.get("evaluate_only"):
        return pd.DataFrame(columns=COLUMNS)
    if done.get("results_csv"):
        table = pd.read_csv(run_dir / done["results_csv"]).rename(columns=lambda c: c.strip())
        long = table.melt(id_vars="epoch", value_vars=[c for c in YOLO_COMPONENTS if c in table], var_name="component")
        long = long.assign(component=long.component.map(YOLO_COMPONENTS), step=long.epoch)
    else:
        components = json.loads((run_dir / "loss_components.json").read_text())
        long = pd.DataFrame([(name, k + 1, v) for name, values in components.items() for k, v in enumerate(values)],
                            columns=["component", "step", "value"])
    return long.assign(model=key[0], trainset=key[1], seed=key[2])[COLUMNS]


def smoothed(values: pd.Series) -> pd.Series:
    """A centred running mean over about a twentieth of the run (iteration losses are noisy)."""
    return values.rolling(max(1, len(values) // 20), center=True, min_periods=1).mean()


def plot_model(frame: pd.DataFrame, model: str, path: Path) -> None:
    rows = frame[frame.model == model]
    components = sorted(rows.component.unique())
    fig, axes = plt.subplots(1, len(components), figsize=(3.6 * len(components), 3.0), squeeze=False)
    for ax, component in zip(axes[0], components):
        for trainset, group in rows[rows.component == component].groupby("trainset"):
            per_seed = group.pivot_table(index="step", columns="seed", values="value").apply(smoothed)
            mean, spread = per_seed.mean(axis=1), per_seed.std(axis=1).fillna(0)
            ax.plot(mean.index, mean, label=f"{trainset} ({per_seed.shape[1]} seeds)")
            ax.fill_between(mean.index, mean - spread, mean + spread, alpha=0.2)
        ax.set_title(component, fontsize=9)
        ax.set_xlabel("epoch" if component in YOLO_COMPONENTS.values() else "iteration")
        ax.legend(fontsize=7)
    fig.suptitle(f"{model}: training loss components (smoothed, mean ± std over seeds)", fontsize=10)
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

