"""Tables from the scored evaluations (no inference, no training).

`metrics.csv`/`.parquet`: one row per (model, trainset, seed, checkpoint, testset, metric).
Paper-shaped tables: rows model x training set, columns test sets, cells mean ± std over
seeds, at the best-by-validation checkpoint and averaged over a checkpoint window.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from .. import metric_names
from ..io import write_parquet, write_table as write_table_as, write_text

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


def per_class_names(names: list[str]) -> dict[str, list[str] | None]:
    """The per-class families that table_metrics names ("AP/sheep", or "AP/*" for every class):
    family -> the classes named (None: all)."""
    chosen: dict[str, list[str] | None] = {}
    for name in names:
        family, _, cls = name.partition("/")
        if cls:
            chosen[family] = None if cls == "*" or chosen.get(family, []) is None else [*chosen.get(family, []), cls]
    return chosen


def per_class_table(best: pd.DataFrame, family: str, classes: list[str] | None) -> pd.DataFrame:
    """Rows model x training set x class (a loss's component), columns test sets, cells mean ± std over seeds."""
    part = metric_names.part_of(family)
    rows = best[best.metric.str.startswith(f"{family}/")]
    rows = rows.assign(**{part: rows.metric.str.removeprefix(f"{family}/")})
    if classes is not None:
        rows = rows[rows[part].isin(classes)]
    if rows.empty:
        return pd.DataFrame()
    cells = rows.groupby(["model", "trainset", part, "testset"])["value"].apply(mean_std).unstack("testset")
    return cells.rename_axis(columns=None).reset_index().rename(columns={"trainset": "training set"})


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
    write_table_as(table, stem, ("md", "tex", "html"), caption)


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
    for family, classes in per_class_names(names).items():
        table = per_class_table(best, family, classes)
        if not table.empty:
            write_table(table, out_dir / f"{family}_per_class",
                        f"{family} per {metric_names.part_of(family)} (best checkpoint by validation), mean ± std over seeds")
            written.append(f"{family}_per_class")
    for metric in (name for name in names if "/" not in name):
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
