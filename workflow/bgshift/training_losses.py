"""A run's losses: every training loss component per step and the val loss at each checkpoint
(torchvision families: loss_components.json and the run's checkpoints; YOLO: its results.csv),
and the metric rows `score` writes from them, so tables and plots compare training sets on the
losses (the deck's correlated-class result is a gap in the RPN's objectness loss).

Rows sit at checkpoints like every other metric: at each kept checkpoint `loss/<component>` is
the training loss averaged over the steps since the checkpoint before (testset "train") and
`val_loss/<component>` the val split's (testset "val"); `best` repeats the best checkpoint's
(YOLO, which logs per epoch and keeps no step of its best.pt: the row of its best epoch).
The last checkpoint's row is the final loss, and the *_window tables average the windowed ones.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

YOLO_COMPONENTS = ("box_loss", "cls_loss", "dfl_loss")
COLUMNS = ["model", "trainset", "seed", "split", "step", "component", "value"]


def _yolo(done: dict, run_dir: Path) -> pd.DataFrame:
    table = pd.read_csv(run_dir / done["results_csv"]).rename(columns=lambda c: c.strip())
    wanted = [f"{split}/{c}" for split in ("train", "val") for c in YOLO_COMPONENTS if f"{split}/{c}" in table]
    long = table.melt(id_vars="epoch", value_vars=wanted, var_name="column")
    parts = long.column.str.split("/", n=1, expand=True)
    return long.assign(split=parts[0], component=parts[1], step=long.epoch)


def _torchvision(done: dict, run_dir: Path) -> pd.DataFrame:
    components = json.loads((run_dir / "loss_components.json").read_text())
    rows = [("train", k + 1, name, v) for name, values in components.items() for k, v in enumerate(values)]
    rows += [("val", c["iteration"], name, v) for c in done.get("checkpoints", []) for name, v in (c.get("val_loss") or {}).items()]
    return pd.DataFrame(rows, columns=["split", "step", "component", "value"])


def run_losses(done_path: Path) -> pd.DataFrame:
    """One run's losses per split and step (iteration, or epoch for YOLO); none for an adopted model."""
    done = json.loads(Path(done_path).read_text())
    if done.get("evaluate_only"):
        return pd.DataFrame(columns=COLUMNS)
    run_dir = Path(done_path).parent
    long = _yolo(done, run_dir) if done.get("results_csv") else _torchvision(done, run_dir)
    return long.assign(model=done.get("model"), trainset=done.get("set"), seed=done.get("seed"))[COLUMNS]


def _kept(done: dict) -> list[tuple[str, int]]:
    """(label, step) of the run's kept checkpoints, as the detect stage names them."""
    if done.get("results_csv"):
        return [(Path(c["name"]).stem, c["epoch"]) for c in done["checkpoints"]]
    return [(Path(c["name"]).stem, c["iteration"]) for c in done["checkpoints"]]


def _best_step(done: dict, run_dir: Path) -> int | None:
    """The step of the run's best checkpoint: torchvision families record it; YOLO's best.pt is
    the epoch of highest fitness in its results.csv (ultralytics' own: 0.1 mAP50 + 0.9 mAP50-95)."""
    if not done.get("results_csv"):
        return (done.get("best") or {}).get("iteration")
    table = pd.read_csv(run_dir / done["results_csv"]).rename(columns=lambda c: c.strip())
    if "metrics/mAP50(B)" not in table or table.empty:
        return None
    fitness = 0.1 * table["metrics/mAP50(B)"] + 0.9 * table["metrics/mAP50-95(B)"]
    return int(table.epoch[fitness.idxmax()])


def _rows_at(losses: pd.DataFrame, label: str, step: int, previous: int) -> list[tuple[str, int, str, str, float]]:
    """A checkpoint's rows: the training loss over the steps after `previous` up to it, the val loss at it."""
    since = losses[(losses.split == "train") & (losses.step > previous) & (losses.step <= step)]
    at = losses[(losses.split == "val") & (losses.step == step)]
    return [(label, step, split, f"{metric}/{component}", float(value))
            for split, metric, frame in (("train", "loss", since), ("val", "val_loss", at))
            for component, value in frame.groupby("component").value.mean().items()]


def loss_rows(done_path: str | Path) -> list[tuple[str, int, str, str, float]]:
    """(checkpoint, step, testset, metric, value) rows of one run: see the module's docstring."""
    done = json.loads(Path(done_path).read_text())
    losses = run_losses(Path(done_path))
    if losses.empty:
        return []
    rows, previous, kept = [], 0, _kept(done)
    for label, step in kept:
        rows += _rows_at(losses, label, step, previous)
        previous = step
    best = _best_step(done, Path(done_path).parent)
    if best is not None:  # YOLO's epochs are logged one by one: its best is its epoch's row
        before = best - 1 if done.get("results_csv") else max([s for _, s in kept if s < best], default=0)
        rows += _rows_at(losses, "best", best, before)
    return rows
