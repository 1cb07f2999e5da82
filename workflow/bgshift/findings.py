"""Findings: the seed studies' claims measured on our own runs, each with an interval and a verdict.

A finding compares conditions (training sets, test sets) of one study's metrics table at the
best-by-validation checkpoint, seed by seed: the effect is the mean over seeds of a paired
difference, its 95% interval Student's t over seeds, and the verdict says whether the
claimed direction holds (interval above 0), is reversed (below 0), or is inconclusive
(contains 0). Nothing is tuned towards a direction: the verdict is what the runs say.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from .io import write_json, write_text  # noqa: E402
from .report import save_png, window_values  # noqa: E402


@dataclass
class Comparison:
    """One claimed direction: `effect` > 0 means the claim holds."""

    finding: str
    claim: str
    effect: float
    low: float
    high: float
    seeds: int
    verdict: str


def interval(diffs: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval of paired per-seed differences (nan bounds for one seed)."""
    diffs = np.asarray(diffs, float)
    mean = float(diffs.mean())
    if len(diffs) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs)))
    return mean, mean - half, mean + half


def verdict(low: float, high: float) -> str:
    if np.isnan(low):
        return "inconclusive"
    return "holds" if low > 0 else "reversed" if high < 0 else "inconclusive"


class Study:
    """One study's metrics table (results/<study>/tables/metrics.parquet), per seed."""

    def __init__(self, results: str | Path, model: str):
        self.results = Path(results)
        frame = pd.read_parquet(self.results / "tables" / "metrics.parquet")
        self.frame = frame[frame.model == model]
        self.best = self.frame[self.frame.checkpoint == "best"]

    def per_seed(self, metric: str, trainset: str, testset: str) -> pd.Series:
        rows = self.best[(self.best.metric == metric) & (self.best.trainset == trainset) & (self.best.testset == testset)]
        if rows.empty:
            raise KeyError(f"{self.results}: no {metric} of training set {trainset!r} on {testset!r}")
        return rows.set_index("seed").value.sort_index()

    def windowed(self, metric: str, trainset: str, testset: str, start: int | None, stop: int | None) -> pd.Series:
        rows = window_values(self.frame, metric, start, stop)
        rows = rows[(rows.trainset == trainset) & (rows.testset == testset)]
        return rows.set_index("seed").value.sort_index()


def compare(finding: str, claim: str, larger: pd.Series, smaller: pd.Series) -> Comparison:
    """Claim: `larger` > `smaller`, paired by seed."""
    seeds = larger.index.intersection(smaller.index)
    mean, low, high = interval((larger[seeds] - smaller[seeds]).to_numpy())
    return Comparison(finding, claim, mean, low, high, len(seeds), verdict(low, high))


# ------------------------------------------------------------------ the findings
def missing_annotations(lab: Study) -> tuple[list[Comparison], pd.DataFrame]:
    """(a) BRL paper, Table 1: AP50 on test_original falls normal > easy > hard > extreme."""
    schemes = ["normal", "easy", "hard", "extreme"]  # training sets: the originals under each drop scheme
    ap = {s: lab.per_seed("AP50", "original" if s == "normal" else s, "test_original") for s in schemes}
    rows = [compare("a", f"AP50 {a} > {b}", ap[a], ap[b]) for a, b in zip(schemes, schemes[1:])]
    rows.append(compare("a", "AP50 normal > extreme", ap["normal"], ap["extreme"]))
    return rows, pd.DataFrame(ap)


def masking_unlabelled(farms: Study, window: tuple[int | None, int | None]) -> tuple[list[Comparison], pd.DataFrame]:
    """(b) Sheep study, Tables 1-2: count MAE on a fully labelled site is lower for models
    trained with unlabelled objects masked than for the unmasked control."""
    masks = {"black": "unl_black", "random colour": "unl_color", "real patch": "unl_patch"}
    trainsets = {"control": "control", **masks}
    best = {name: farms.per_seed("count_mae", s, "test_original") for name, s in trainsets.items()}
    windowed = {name: farms.windowed("count_mae", s, "test_original", *window) for name, s in trainsets.items()}
    rows = [compare("b", f"count MAE control > {name} (best checkpoint)", best["control"], best[name]) for name in masks]
    span = f"epochs {window[0] or 'first'}-{window[1] or 'last'}"
    rows += [compare("b", f"count MAE control > {name} (mean over {span})", windowed["control"], windowed[name]) for name in masks]
    return rows, pd.DataFrame(best)


def solid_backgrounds(lab: Study, colours: list[str]) -> tuple[list[Comparison], pd.DataFrame]:
    """(c) Background-augmentation report, Table 3: originals-trained models lose AP50 on solid
    backgrounds; training on originals plus colour backgrounds narrows the loss."""
    def loss(trainset: str) -> pd.Series:
        on_colours = pd.concat([lab.per_seed("AP50", trainset, f"test_bg_color_{c}") for c in colours], axis=1).mean(axis=1)
        return lab.per_seed("AP50", trainset, "test_original") - on_colours

    original, colour = loss("original"), loss("colour")
    rows = [compare("c", "AP50 loss on colour backgrounds > 0 (trained on originals)", original, original * 0),
            compare("c", "the loss narrows when colour backgrounds are trained on", original, colour)]
    return rows, pd.DataFrame({"original": original, "original + colour": colour})


def background_reliance(lab: Study) -> tuple[list[Comparison], pd.DataFrame]:
    """(d) Xiao et al.: with correlated backgrounds, BG-gap = AP50(mixed_same) - AP50(mixed_rand)
    is positive for originals-trained models and smaller for models trained on mixed_rand."""
    def gap(trainset: str) -> pd.Series:
        return lab.per_seed("AP50", trainset, "test_mixed_same") - lab.per_seed("AP50", trainset, "test_mixed_rand")

    original, mixed_rand = gap("original"), gap("mixed_rand")
    rows = [compare("d", "BG-gap > 0 (trained on originals)", original, original * 0),
            compare("d", "BG-gap smaller when trained on mixed_rand", original, mixed_rand)]
    return rows, pd.DataFrame({"original": original, "mixed_rand": mixed_rand})


def recalibration(brl: Study, focal: Study) -> tuple[list[Comparison], pd.DataFrame]:
    """(e) BRL paper, Table 2: with annotations dropped (hard, extreme), RetinaNet trained with the
    Background Recalibration Loss reaches a higher AP50 on fully labelled test images than with focal loss."""
    schemes = ["hard", "extreme"]
    ap = {(s, loss): study.per_seed("AP50", s, "test_original") for s in schemes for loss, study in (("focal", focal), ("BRL", brl))}
    rows = [compare("e", f"AP50 BRL > focal (trained on {s})", ap[(s, "BRL")], ap[(s, "focal")]) for s in schemes]
    return rows, pd.DataFrame({f"{s} {loss}": values for (s, loss), values in ap.items()})


def classifier_background_reliance(study: Study, classes: int) -> tuple[list[Comparison], pd.DataFrame]:
    """(f) Xiao et al. with classifiers: with correlated backgrounds, an originals-trained
    classifier has BG-gap = accuracy(mixed_same) - accuracy(mixed_rand) > 0, classifies
    background-only crops (only_bg_t, only_bg_b, no_fg) above chance, and fails the
    backgrounds challenge more often than it errs on the original images."""
    acc = {test: study.per_seed("accuracy", "original", f"test_{test}")
           for test in ("original", "mixed_same", "mixed_rand", "only_bg_t", "only_bg_b", "no_fg")}
    chance = 1 / classes
    rows = [compare("f", "BG-gap > 0 (accuracy, trained on originals)", acc["mixed_same"], acc["mixed_rand"])]
    rows += [compare("f", f"accuracy on {test} > chance ({chance:.3f})", acc[test], acc[test] * 0 + chance)
             for test in ("only_bg_t", "only_bg_b", "no_fg")]
    challenge = study.per_seed("challenge_accuracy", "original", "test_challenge")
    rows.append(compare("f", "accuracy on original > backgrounds-challenge accuracy", acc["original"], challenge))
    return rows, pd.DataFrame({**acc, "challenge": challenge})


def classifier_training_backgrounds(study: Study, trainsets: dict[str, str]) -> tuple[list[Comparison], pd.DataFrame]:
    """(g) The background-factors deck: classifiers trained on foreground-only, blurred or
    reduced-region backgrounds against originals-trained ones, on the original test images and
    on random backgrounds (mixed_rand); `trainsets`: label -> training set name."""
    original = study.per_seed("accuracy", "original", "test_original")
    rows, values = [], {"original": original}
    for label, trainset in trainsets.items():
        values[label] = study.per_seed("accuracy", trainset, "test_original")
        rows.append(compare("g", f"accuracy on test_original: trained on {label} > on originals", values[label], original))
    on_random = study.per_seed("accuracy", "original", "test_mixed_rand")
    rows += [compare("g", f"accuracy on test_mixed_rand: trained on {label} > on originals",
                     study.per_seed("accuracy", trainset, "test_mixed_rand"), on_random) for label, trainset in trainsets.items()]
    return rows, pd.DataFrame(values)


TITLES = {
    "a": ("Missing annotations", "AP50 on test_original by drop scheme of the training set", "AP50"),
    "b": ("Masking unlabelled objects", "count MAE on a fully labelled test site by training set", "count MAE"),
    "c": ("Solid backgrounds", "AP50 lost on bg_color_* test sets against test_original", "AP50 loss"),
    "d": ("Background reliance", "BG-gap: AP50(mixed_same) - AP50(mixed_rand)", "BG-gap (AP50)"),
    "e": ("Background Recalibration Loss", "AP50 on test_original of RetinaNet trained on dropped annotations", "AP50"),
    "f": ("Classifier background reliance", "accuracy of originals-trained classifiers by test set", "accuracy"),
    "g": ("Classifier training backgrounds", "accuracy on test_original by training backgrounds", "accuracy"),
}
# (g)'s training sets in the classification study (config/study/classify.yaml): label -> set name
TRAINING_BACKGROUNDS = {"foreground only": "only_fg", "blurred": "blurred", "reduced region": "reduced"}


def _plot(key: str, values: pd.DataFrame, path: Path) -> None:
    """Bars: mean over seeds per condition, one dot per seed."""
    title, subtitle, ylabel = TITLES[key]
    fig, ax = plt.subplots(figsize=(1.4 * len(values.columns) + 2, 3.2))
    means = values.mean()
    ax.bar(range(len(means)), means.to_numpy(), color="#8cb4d8")
    for i, column in enumerate(values.columns):
        ax.scatter(np.full(len(values), i), values[column].to_numpy(), color="#1f3b57", s=14, zorder=3)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(range(len(means)), [str(c) for c in values.columns])
    ax.set_ylabel(ylabel)
    ax.set_title(f"({key}) {title}\n{subtitle}", fontsize=9)
    save_png(fig, path)


def _fmt(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:+.3f}"


def write(studies: dict[str, Callable[[], tuple[list[Comparison], pd.DataFrame]]], out_dir: str | Path, command: str) -> list[Comparison]:
    """Compute every finding, then write findings.md, findings.json and one plot per finding."""
    out_dir = Path(out_dir)
    rows: list[Comparison] = []
    lines = ["# Findings", "", f"Made by `{command}`. Effect = mean over seeds of the paired difference; "
             "95% interval = Student's t over seeds; verdict: holds (interval above 0), reversed (below 0), "
             "inconclusive (contains 0).", "",
             "| finding | claim | effect | 95% interval | seeds | verdict |", "|---|---|---|---|---|---|"]
    sections = []
    for key, compute in studies.items():
        comparisons, values = compute()
        rows += comparisons
        _plot(key, values, out_dir / "findings" / f"{key}.png")
        lines += [f"| ({c.finding}) {TITLES[key][0]} | {c.claim} | {_fmt(c.effect)} | [{_fmt(c.low)}, {_fmt(c.high)}] | "
                  f"{c.seeds} | **{c.verdict}** |" for c in comparisons]
        per_condition = values.agg(["mean", "std"]).T.round(3).rename_axis("condition").reset_index()
        sections += ["", f"## ({key}) {TITLES[key][0]}: {TITLES[key][1]}", "", per_condition.to_markdown(index=False),
                     "", f"![({key})](findings/{key}.png)"]
    write_text(out_dir / "findings.md", "\n".join(lines + sections) + "\n")
    write_json(out_dir / "findings.json", [asdict(c) for c in rows])
    return rows


def run(lab: str | Path, farms: str | Path, brl: str | Path, classify: str | Path, out_dir: str | Path, model: str,
        window: tuple[int | None, int | None], colours: list[str], losses: tuple[str, str], classifier: str,
        command: str) -> list[Comparison]:
    """The findings of `make study`: (a), (c), (d) from the lab world, (b) from the farms world,
    (e) from the BRL world, whose `losses` are the (BRL, focal) model names, (f) and (g) from the
    classification world's `classifier`."""
    import pyarrow.parquet as pq

    lab_study, farms_study = Study(lab, model), Study(farms, model)
    brl_study, focal_study = Study(brl, losses[0]), Study(brl, losses[1])
    classify_study = Study(classify, classifier)
    classes = pq.read_metadata(Path(classify) / "ingest" / "categories.parquet").num_rows
    return write({"a": lambda: missing_annotations(lab_study), "b": lambda: masking_unlabelled(farms_study, window),
                  "c": lambda: solid_backgrounds(lab_study, colours), "d": lambda: background_reliance(lab_study),
                  "e": lambda: recalibration(brl_study, focal_study),
                  "f": lambda: classifier_background_reliance(classify_study, classes),
                  "g": lambda: classifier_training_backgrounds(classify_study, TRAINING_BACKGROUNDS)},
                 out_dir, command)
