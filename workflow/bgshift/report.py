"""Tables and plots from the scored evaluations (no inference, no training).

`metrics.csv`/`.parquet`: one row per (model, trainset, seed, checkpoint, testset, metric).
Paper-shaped tables: rows model x training set, columns test sets, cells mean ± std over
seeds, at the best-by-validation checkpoint and averaged over a checkpoint window.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from . import metric_names  # noqa: E402
from .io import atomic_path, write_parquet, write_text  # noqa: E402

COLUMNS = ["model", "trainset", "seed", "checkpoint", "step", "testset", "metric", "value"]


def load_metrics(files: list[str | Path]) -> pd.DataFrame:
    frames = [pd.read_parquet(f) for f in files]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return frame.sort_values(COLUMNS[:7], kind="stable").reset_index(drop=True)[COLUMNS]


def mean_std(values: pd.Series) -> str:
    """'mean ± std (n=seeds)' over seeds (sample std); just the mean for a single seed."""
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.3f} (n=1)"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f} (n={len(values)})"


def learning_check(frame: pd.DataFrame, check: dict) -> dict:
    """Did the originals-trained models learn? Mean over seeds on the original test set against a
    floor: AP50 for detectors, accuracy for classifiers; a table of numbers from models that
    learnt nothing carries no signal."""
    floors = {"AP50": check["ap50_floor"], "accuracy": check["accuracy_floor"]}
    rows = frame[(frame.checkpoint == "best") & frame.metric.isin(list(floors)) & (frame.trainset == check["trainset"])
                 & (frame.testset == check["testset"])]
    models = {}
    for (model, metric), group in rows.groupby(["model", "metric"], sort=True):
        mean = float(group.value.mean())
        models[model] = {metric: round(mean, 4), "seeds": int(group.seed.nunique()), "learnt": mean >= floors[metric]}
    failed = sorted(m for m, r in models.items() if not r["learnt"])
    message = (f"WARNING: these models did not learn ({', '.join(failed)}: on {check['testset']} below the floor, AP50 "
               f"{check['ap50_floor']} or accuracy {check['accuracy_floor']}); the tables below carry no signal" if failed else
               f"every model trained on {check['trainset']} reaches its floor on {check['testset']} (AP50 >= {check['ap50_floor']}, "
               f"accuracy >= {check['accuracy_floor']})" if models else
               f"no model was trained on {check['trainset']} and tested on {check['testset']}: nothing to check")
    return {**check, "models": models, "all_learnt": bool(models) and not failed, "message": message}


def paper_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """per_seed: columns model, trainset, seed, testset, value -> rows model x trainset, columns testset."""
    cells = per_seed.groupby(["model", "trainset", "testset"], sort=True)["value"].apply(mean_std).unstack("testset")
    return cells.rename_axis(columns=None).reset_index().rename(columns={"trainset": "training set"})


def window_values(frame: pd.DataFrame, metric: str, start: int | None, stop: int | None) -> pd.DataFrame:
    """Per seed, the metric averaged over kept checkpoints whose step lies in [start, stop]."""
    rows = frame[(frame.metric == metric) & (frame.checkpoint != "best") & frame.step.notna()]
    if start is not None:
        rows = rows[rows.step >= start]
    if stop is not None:
        rows = rows[rows.step <= stop]
    return rows.groupby(["model", "trainset", "seed", "testset"], as_index=False)["value"].mean()


def background_gap(frame: pd.DataFrame) -> pd.DataFrame:
    """Xiao et al.'s BG-gap: score(mixed_same) - score(mixed_rand) per seed, best checkpoint;
    the score is AP for detectors and accuracy for classifiers."""
    best = frame[(frame.checkpoint == "best") & frame.metric.isin(["AP", "accuracy"])]
    wide = best.pivot_table(index=["model", "trainset", "seed"], columns="testset", values="value")
    if not {"test_mixed_same", "test_mixed_rand"} <= set(wide.columns):
        return pd.DataFrame(columns=["model", "trainset", "seed", "testset", "value"])
    gap = (wide["test_mixed_same"] - wide["test_mixed_rand"]).dropna().rename("value").reset_index()
    return gap.assign(testset="bg_gap")


TIDE_MAIN = ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"]


def tide_table(frame: pd.DataFrame) -> pd.DataFrame:
    """TIDE's main errors at the best checkpoint: rows model x training set x error, columns test
    sets, cells dAP50 mean ± std over seeds (how the error mix shifts across backgrounds)."""
    best = frame[(frame.checkpoint == "best") & frame.metric.isin([f"tide/{e}" for e in TIDE_MAIN])]
    if best.empty:
        return pd.DataFrame()
    best = best.assign(error=pd.Categorical(best.metric.str.removeprefix("tide/"), TIDE_MAIN, ordered=True))
    cells = best.groupby(["model", "trainset", "error", "testset"], sort=True, observed=True)["value"].apply(mean_std).unstack("testset")
    return cells.rename_axis(columns=None).reset_index().rename(columns={"trainset": "training set"})


def write_table(table: pd.DataFrame, stem: Path, caption: str) -> None:
    write_text(stem.with_suffix(".md"), f"{caption}\n\n" + table.to_markdown(index=False) + "\n")
    latex = (table.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
             .set_caption(caption.replace("±", "$\\pm$")).to_latex(hrules=True))
    write_text(stem.with_suffix(".tex"), latex.replace(" ± ", " $\\pm$ ") + "\n")
    write_text(stem.with_suffix(".html"), f"<h3>{caption}</h3>\n" + table.to_html(border=0, classes="metrics", index=False) + "\n")


def _remove_stale_tables(out_dir: Path, written: list[str]) -> None:
    """Tables the previous run wrote (its index.json) and this one does not: a metric taken out
    of evaluate.table_metrics no longer leaves its old table beside the new ones."""
    index = out_dir / "index.json"
    for stem in (set(json.loads(index.read_text())) - set(written)) if index.is_file() else ():
        for suffix in (".md", ".tex", ".html"):
            (out_dir / f"{stem}{suffix}").unlink(missing_ok=True)


def tables(metric_files: list[str | Path], out_dir: str | Path, settings: dict) -> list[str]:
    """Write the long table and every paper-shaped table; returns the table stems written."""
    out_dir = Path(out_dir)
    frame = load_metrics(metric_files)
    write_parquet(out_dir / "metrics.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    write_text(out_dir / "metrics.csv", frame.to_csv(index=False))
    written = []
    best = frame[frame.checkpoint == "best"]
    names = metric_names.usual(set(frame.metric)) if settings["table_metrics"] is None else settings["table_metrics"]
    for metric in names:
        per_seed = best[best.metric == metric][["model", "trainset", "seed", "testset", "value"]]
        if per_seed.empty:
            continue
        write_table(paper_table(per_seed), out_dir / f"{metric}", f"{metric} (best checkpoint by validation), mean ± std over seeds")
        written.append(metric)
        windowed = window_values(frame, metric, settings["window"]["start"], settings["window"]["stop"])
        if not windowed.empty:
            span = f"steps {settings['window']['start'] or 'first'}–{settings['window']['stop'] or 'last'}"
            write_table(paper_table(windowed), out_dir / f"{metric}_window", f"{metric} averaged over checkpoints ({span}), mean ± std over seeds")
            written.append(f"{metric}_window")
    gap = background_gap(frame)
    if not gap.empty:
        write_table(paper_table(gap), out_dir / "bg_gap", "BG-gap: AP (detectors) or accuracy (classifiers) on mixed_same − on mixed_rand, best checkpoint, mean ± std over seeds")
        written.append("bg_gap")
    tide = tide_table(frame)
    if not tide.empty:
        write_table(tide, out_dir / "tide", "TIDE errors (Bolya et al.): AP50 each kind of error costs (dAP50), best checkpoint, mean ± std over seeds")
        written.append("tide")
    _remove_stale_tables(out_dir, written)
    write_text(out_dir / "index.json", json.dumps(written) + "\n")
    check = learning_check(frame, settings["learning_check"])
    write_text(out_dir / "learning.json", json.dumps(check, indent=2, sort_keys=True) + "\n")
    print(check["message"], flush=True)
    banner = f'<p class="learning" style="font-weight:bold;color:{"#a00" if not check["all_learnt"] else "#060"}">{check["message"]}</p>'
    pages = [(out_dir / f"{stem}.html").read_text() for stem in written]
    write_text(out_dir / "tables.html", "<html><body>\n" + banner + "\n" + "\n".join(pages) + "</body></html>\n")
    return written


# ---------------------------------------------------------------- plots
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


def plots(metric_files: list[str | Path], out_dir: str | Path, drop_of: dict[str, str]) -> None:
    out_dir = Path(out_dir)
    frame = load_metrics(metric_files)
    plot_by_trainset(frame, out_dir / "ap_by_trainset.png")
    plot_by_drop(frame, drop_of, out_dir / "ap_by_drop_scheme.png")
    plot_mae_by_checkpoint(frame, out_dir / "mae_by_checkpoint.png")
    plot_tide(frame, out_dir / "tide_errors.png")


def detection_examples(manifests: list[str | Path], out: str | Path, threshold: float, images: int = 4) -> None:
    """A few test_original images per model with its best checkpoint's detections (green)
    and the ground truth (white); first training set and seed of each model."""
    import cv2

    from . import images as imgs
    from .metrics import load_coco

    chosen = {}
    for path in sorted(map(Path, manifests)):
        m = json.loads(path.read_text())
        if m["task"] == "detection":
            chosen.setdefault(m["model"], (path, m))
    rows = []
    for model, (path, m) in sorted(chosen.items()):
        entry = next((e for e in m["evaluations"] if e["checkpoint"] == "best" and e["test_set"] == "test_original"), None)
        if entry is None:
            continue
        gt = load_coco(entry["ground_truth"])
        dets = json.loads((path.parent / entry["detections"]).read_text())
        tiles = []
        for info in gt.loadImgs(sorted(gt.getImgIds())[:images]):
            bgr = imgs.read_bgr(Path(entry["ground_truth"]).parent / info["file_name"])
            for a in gt.loadAnns(gt.getAnnIds(imgIds=[info["id"]])):
                x, y, w, h = map(int, a["bbox"])
                cv2.rectangle(bgr, (x, y), (x + w, y + h), (255, 255, 255), 1)
            for d in dets:
                if d["image_id"] == info["id"] and d["score"] >= threshold:
                    x, y, w, h = map(int, d["bbox"])
                    cv2.rectangle(bgr, (x, y), (x + w, y + h), (0, 200, 0), 2)
            tiles.append(cv2.resize(bgr, (320, int(320 * bgr.shape[0] / bgr.shape[1]))))
        height = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, height - t.shape[0]), (2, 2), (0, 0))) for t in tiles]
        label = np.full((24, sum(t.shape[1] for t in tiles), 3), 255, np.uint8)
        cv2.putText(label, f"{model} ({m['set']}, seed {m['seed']}): detections >= {threshold} in green, ground truth in white",
                    (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.vstack([label, np.hstack(tiles)]))
    width = max((r.shape[1] for r in rows), default=320)
    picture = np.vstack([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]) if rows \
        else np.full((40, 320, 3), 255, np.uint8)
    from .io import write_bytes

    write_bytes(out, imgs.encode_png(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)))
