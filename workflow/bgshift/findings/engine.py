"""One engine for every study: read the per-image records of any run, compute each declared
claim's effect per seed and under resampled test images, and judge the claims together.

No set, model or test-set name is written here: the claims (claims.py) name them. A findings
run may span several configs (make study's worlds): each config's claims read its own runs,
and Holm's correction covers every claim of the run. Each study's test images share one set
of bootstrap weights (seeded), so every arm, seed and checkpoint of a claim sees the same
resampled images, and a rerun gives the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import ConfigError
from . import resample, stats
from ..pretrained import PRETRAINED, PRETRAINED_SEED, runs
from ..metric_names import LOSS_METRICS
from .claims import Cell, Claim, Term, metric_family, parse

UNADJUSTED_LEVEL = 0.05  # the unadjusted interval printed beside the adjusted one


@dataclass
class Study:
    """One config's claims and the per-image records of its runs. `config` needs only its
    findings section, evaluate.window and seed; `models`: the names in train.models."""

    label: str
    config: dict
    models: list[str]
    files: list[Path]
    claims: list[Claim] = field(init=False)
    runs: dict = field(init=False, default_factory=dict)  # (model, trainset, seed) -> per-image file

    @classmethod
    def of_config(cls, path: str | Path) -> "Study":
        """A config file's study: its runs' records under its own results folder."""
        from ..config import load
        from ..sets import definitions, trained_sets

        config = load(path)
        files = [Path(config["results"]) / "eval" / model / trainset / f"seed{seed}" / "per_image.parquet"
                 for model, trainset, seed in runs(config, trained_sets(config, definitions(config)))]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise ConfigError(f"{path}: runs not scored yet (run its snakemake first): {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        return cls(Path(path).stem, config, list(config["train"]["models"]), files)

    def __post_init__(self):
        # by name: the rule's JSON slice of the config sorts its keys, so the declared order is not kept
        self.claims = sorted(parse(self.config["findings"]["claims"], self.models), key=lambda claim: claim.name)
        for path in self.files:
            meta = {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}
            self.runs[(meta["bgshift.model"], meta["bgshift.trainset"], int(meta["bgshift.seed"]))] = path
        self._tables: dict = {}
        self._evaluations: dict = {}
        self._values: dict = {}

    def seeds(self, cell: Cell) -> set[int]:
        return {seed for (model, trainset, seed) in self.runs if (model, trainset) == (cell.model, cell.trainset)}

    @staticmethod
    def run_seed(cell: Cell, seed: int) -> int:
        """The seed of a cell's run paired with `seed`: an evaluate-only model's one run pairs with every seed."""
        return PRETRAINED_SEED if cell.trainset == PRETRAINED else seed

    def table(self, model: str, trainset: str, seed: int):
        key = (model, trainset, seed)
        if key not in self._tables:
            self._tables[key] = pq.read_table(self.runs[key])
        return self._tables[key]

    def prepare(self, replicates: int, seed: int) -> None:
        """The study's test images (every unit any needed run saw) and their bootstrap weights."""
        needed = {(c.model, c.trainset, s) for claim in self.claims for c in claim.cells for s in self.seeds(c)}
        units = [self.table(*key).column("unit").to_numpy() for key in sorted(needed)]
        self.universe = np.unique(np.concatenate(units)) if units else np.zeros(0, np.int64)
        if not len(self.universe):
            raise ConfigError(f"{self.label}: the claims' runs scored no test image")
        self.weights = resample.bootstrap_weights(len(self.universe), replicates, seed)

    def test_units(self, cell: Cell, seed: int) -> np.ndarray:
        """The source images (units) a cell's run scored on its test set, sorted."""
        table = self.table(cell.model, cell.trainset, self.run_seed(cell, seed))
        return np.unique(table.filter(pc.equal(table.column("testset"), cell.testset)).column("unit").to_numpy())

    def shared_units(self, claim: Claim, seeds: list[int]) -> tuple[np.ndarray | None, int]:
        """The test images every cell of a claim scored, when its cells' test sets differ
        (an original kept whole beside variants of its QC-passed images): each arm is measured
        on these, so the comparison stays paired. None: every cell scored the same images.
        With their number either way."""
        unit_sets = [self.test_units(cell, seed) for cell in claim.cells for seed in seeds]
        if all(np.array_equal(units, unit_sets[0]) for units in unit_sets):
            return None, len(unit_sets[0])
        shared = unit_sets[0]
        for units in unit_sets[1:]:
            shared = np.intersect1d(shared, units, assume_unique=True)
        if not len(shared):
            raise ConfigError(f"{self.label}: claim {claim.name}: its cells' test sets share no test image")
        return shared, len(shared)

    def _evaluations_of(self, cell: Cell, seed: int, checkpoint: str, units: np.ndarray | None) -> list[resample.Evaluation]:
        key = (cell.model, cell.trainset, seed, cell.testset, checkpoint, None if units is None else units.tobytes())
        if key not in self._evaluations:
            table = self.table(cell.model, cell.trainset, seed)
            table = table.filter(pc.equal(table.column("testset"), cell.testset))
            if units is not None:
                table = table.filter(pc.is_in(table.column("unit"), pa.array(units)))
            labels = table.column("checkpoint")
            if checkpoint == "best":
                chosen = [table.filter(pc.equal(labels, "best"))]
            else:
                chosen = [table.filter(pc.equal(table.column("step"), step)) for step in self._window_steps(table)]
            self._evaluations[key] = [resample.Evaluation(t, self.universe) for t in chosen if t.num_rows]
        return self._evaluations[key]

    def _window_steps(self, table) -> list[int]:
        window = self.config["evaluate"]["window"]
        steps = sorted(set(table.filter(pc.not_equal(table.column("checkpoint"), "best")).column("step").to_pylist()))
        return [s for s in steps if (window["start"] is None or s >= window["start"]) and (window["stop"] is None or s <= window["stop"])]

    def run_level(self, claim: Claim, cell: Cell, seed: int) -> float:
        """A metric of the run itself (a loss: LOSS_METRICS), from its metrics.parquet beside the
        per-image records: at the best checkpoint, or the mean over the window's."""
        path = self.runs[(cell.model, cell.trainset, seed)].with_name("metrics.parquet")
        table = pq.read_table(path, filters=[("metric", "=", cell.metric), ("testset", "=", cell.testset)])
        rows = table.to_pandas()
        if claim.checkpoint == "best":
            chosen = rows[rows.checkpoint == "best"]
        else:
            chosen = rows[(rows.checkpoint != "best") & rows.step.isin(self._window_steps(table))]
        if chosen.empty:
            raise ConfigError(f"{self.label}: claim {claim.name}: {path} has no {claim.checkpoint} {cell.metric} on {cell.testset}")
        return float(chosen.value.mean())

    def value(self, claim: Claim, cell: Cell, seed: int, units: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """A cell's metric at one seed, on the test images as they are and under each resample
        (the mean over the window's checkpoints for a window claim); on `units` only when given.
        A run's loss has no test images: every resample sees the same value (its seeds alone vary it)."""
        seed = self.run_seed(cell, seed)
        key = (cell, seed, claim.checkpoint, None if units is None else units.tobytes())
        if key not in self._values and metric_family(cell.metric) in LOSS_METRICS:
            point = self.run_level(claim, cell, seed)
            self._values[key] = (point, np.full(len(self.weights), point))
        if key not in self._values:
            evaluations = self._evaluations_of(cell, seed, claim.checkpoint, units)
            if not evaluations:
                raise ConfigError(f"{self.label}: claim {claim.name}: no {claim.checkpoint} evaluation of {cell.model} "
                                  f"trained on {cell.trainset} (seed {seed}) on {cell.testset}")
            point = float(np.mean([resample.point(e, cell.metric) for e in evaluations]))
            if np.isnan(point):
                raise ConfigError(f"{self.label}: claim {claim.name}: {cell.metric} is undefined on {cell.testset} "
                                  f"(no objects or samples of it)")
            reps = np.mean([resample.replicates(e, cell.metric, self.weights) for e in evaluations], axis=0)
            self._values[key] = (point, reps)
        return self._values[key]


def _side(study: Study, claim: Claim, terms: tuple[Term, ...], seeds: list[int],
          units: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the terms per seed: (n,) points and (B, n) replicates."""
    points, reps = np.zeros(len(seeds)), np.zeros((len(study.weights), len(seeds)))
    for term in terms:
        if term.value is not None:
            points += term.weight * term.value
            reps += term.weight * term.value
            continue
        for j, seed in enumerate(seeds):
            values = [study.value(claim, cell, seed, units) for cell in term.cells]
            points[j] += term.weight * np.mean([v[0] for v in values])
            reps[:, j] += term.weight * np.mean([v[1] for v in values], axis=0)
    return points, reps


def measure(study: Study, claim: Claim) -> dict:
    """A claim's per-seed effects, its estimate (two-level variance) and P(improvement). Cells of
    evaluate-only models have no seed level: they pair with every seed of the trained cells, and a
    claim of such cells alone is judged on its test images only."""
    trained = [cell for cell in claim.cells if cell.trainset != PRETRAINED]
    seeds = sorted(set.intersection(*(study.seeds(cell) for cell in trained))) if trained else [PRETRAINED_SEED]
    if not seeds or not all(study.seeds(cell) for cell in claim.cells):
        raise ConfigError(f"{study.label}: claim {claim.name}: no seed was run for every cell it compares")
    units, images = study.shared_units(claim, seeds)
    plus, plus_reps = _side(study, claim, claim.plus, seeds, units)
    minus, minus_reps = _side(study, claim, claim.minus, seeds, units)
    per_seed = plus - minus
    replicates = plus_reps - minus_reps
    finite = np.isfinite(replicates).all(1)  # a resample without any object of a class leaves AP undefined
    est = stats.estimate(per_seed, replicates[finite], images, fixed=not trained)
    return {"seeds": seeds, "per_seed": per_seed.tolist(), "estimate": est, "resamples": int(finite.sum()), "test_images": images,
            "p_improvement": stats.probability_of_improvement(plus, minus)}


def judge(measured: list[tuple[Study, Claim, dict]], settings: dict) -> list[dict]:
    """Holm across every claim, then each claim's verdict, intervals and seeds needed."""
    alpha, target = settings["alpha"], settings["power"]
    p_values = [stats.p_value(m["estimate"], claim.margin) for _, claim, m in measured]
    adjusted, levels = stats.holm(p_values, alpha)
    rows = []
    for (study, claim, m), p, p_adj, level in zip(measured, p_values, adjusted, levels):
        est = m["estimate"]
        interval_level = 2 * level if claim.margin is not None else level  # TOST's matching interval
        verdict = stats.verdict(est, p_adj, alpha, claim.expect, claim.margin)
        needed = stats.seeds_needed(est, level, claim.margin, target) if verdict == "inconclusive" else None
        rows.append({
            "study": study.label, "claim": claim.name, "title": claim.title, "metric": claim.metric,
            "checkpoint": claim.checkpoint, "expect": claim.kind, "margin": claim.margin, "reference": claim.reference,
            "seeds": m["seeds"], "test_images": m["test_images"], "per_seed": m["per_seed"], "effect": float(est.effect), "se": float(est.se()), "df": float(est.df()),
            "image_share": float(est.image_var / est.se() ** 2) if est.se() > 0 else 0.0, "resamples": m["resamples"],
            "interval": list(est.interval(UNADJUSTED_LEVEL)), "p": p, "adjusted_p": float(p_adj), "holm_level": float(level),
            "adjusted_interval": list(est.interval(interval_level)), "verdict": verdict,
            "p_improvement": m["p_improvement"], "seeds_needed": needed,
            "more_images_needed": verdict == "inconclusive" and needed is None and (est.seeds >= 2 or est.fixed),
        })
    return rows


def settings_of(studies: list[Study]) -> dict:
    """The run's statistical settings: every config of one findings run must agree on them."""
    chosen = {key: studies[0].config["findings"][key] for key in ("alpha", "power", "replicates")}
    for study in studies[1:]:
        other = {key: study.config["findings"][key] for key in chosen}
        if other != chosen:
            raise ConfigError(f"{study.label}: findings settings {other} differ from {studies[0].label}'s {chosen}; "
                              "one findings run judges its claims at one level")
    return chosen


def run(studies: list[Study], out_dir: str | Path, command: str) -> list[dict]:
    """Measure and judge every claim of every study, then write findings.md/.json and the plots."""
    from .write import write

    settings = settings_of(studies)
    names = [claim.name for study in studies for claim in study.claims]
    if len(set(names)) < len(names):
        raise ConfigError(f"claim names repeat across the configs of one findings run: {sorted({n for n in names if names.count(n) > 1})}")
    measured = []
    for index, study in enumerate(studies):
        seed = study.config["findings"]["seed"]
        study.prepare(settings["replicates"], [study.config["seed"] if seed is None else seed, index])
        measured += [(study, claim, measure(study, claim)) for claim in study.claims]
    rows = judge(measured, settings)
    write(rows, settings, Path(out_dir), command)
    return rows
