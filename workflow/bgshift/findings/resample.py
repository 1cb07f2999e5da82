"""A test set's metric under resampled test images, from its per-image records.

A replicate gives each test image (unit) a weight: its count in a bootstrap resample of the
units. Count MAE, false positives per image, accuracy and the saliency maps' foreground
attention are ratios of per-image sums, so a
replicate is one matrix product. AP is recomputed the way COCOeval accumulates it, with each
detection and object weighted by its image's weight, over a detection list sorted once: at
each IoU threshold only its true positives are kept as elements, and the false positives
between two of them enter as one weighted mass (`gaps`), since a false positive changes
precision only at the next true positive (an ignored detection changes nothing). With unit
weights the AP is pycocotools' to the last bit (tests/test_findings.py checks it).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse

from . import kernel
from ..metric_names import AP_PER_IOU
from .claims import metric_family
from .per_image import IOU_THRESHOLDS, classes_of

RECALL_THRESHOLDS = np.linspace(0.0, 1.00, 101)  # COCO's recThrs, built as pycocotools builds it
IOU_INDEX = {"AP": list(range(IOU_THRESHOLDS)), "AP50": [0], "AP75": [5],  # .50:.95, .50, .75
             **{name: [k] for k, name in enumerate(AP_PER_IOU)}}  # AP_iou50 ... AP_iou95
THREADS = 2  # classes computed side by side: the machines this runs on have 2 cores


def _lists(table: pa.Table, column: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    """A list column flattened, with the row each value came from."""
    lists = table.column(column).combine_chunks()
    return lists.flatten().to_numpy(zero_copy_only=False).astype(dtype), pc.list_parent_indices(lists).to_numpy()


@dataclass
class _Threshold:
    """One class's detections at one IoU threshold, sorted as COCOeval sorts them: only the true
    positives are elements; the false positives just before each enter as one mass (`gaps`)."""

    unit: np.ndarray  # (E,) unit of each true positive
    gaps: scipy.sparse.csr_matrix  # (E, U): false positives of each unit between true positives e-1 and e


@dataclass
class _Category:
    thresholds: list[_Threshold]  # one per IoU threshold
    npos: np.ndarray  # (U,) objects AP counts, per unit


class Evaluation:
    """One (run, checkpoint, test set): its per-image table as arrays over the study's units."""

    def __init__(self, table: pa.Table, universe: np.ndarray):
        self.size = len(universe)
        self.rows = np.searchsorted(universe, table.column("unit").to_numpy())
        names, parents = _lists(table, "categories", object)
        present = set(names)
        # the scorer's order (COCO's category ids): its AP is a mean over classes in that order
        self.classes = [c for c in classes_of(table) if c in present] + sorted(present - set(classes_of(table)))
        index = {name: k for k, name in enumerate(self.classes)}
        column = np.array([index[name] for name in names], dtype=np.int64)
        self.counts = {}
        for key in ("npos", "objects", "detected", "samples", "correct", "foregrounds", "passed"):
            values, _ = _lists(table, key, np.float64)
            dense = np.zeros((table.num_rows, len(self.classes)))
            if len(values) == len(parents):
                dense[parents, column] = values
            self.counts[key] = dense
        names = table.column_names  # per-image tables written before saliency have no map columns
        self.attention = {key: table.column(key).to_numpy().astype(np.float64) if key in names else np.zeros(table.num_rows)
                          for key in ("maps", "attention", "attention_area")}
        self.det_class, det_rows = _lists(table, "det_category", object)
        self.det_unit = self.rows[det_rows]
        self.det_score, _ = _lists(table, "det_score", np.float64)
        self.det_matched, _ = _lists(table, "det_matched", np.int64)
        self.det_ignored, _ = _lists(table, "det_ignored", np.int64)
        self._categories: dict[str, _Category] = {}

    def _class_index(self, cls: str | None) -> slice | list[int]:
        if cls is None:
            return slice(None)
        if cls not in self.classes:
            raise KeyError(f"class {cls!r}: not among this test set's classes {self.classes}")
        return [self.classes.index(cls)]

    def per_unit(self, key: str, cls: str | None = None) -> np.ndarray:
        """A count summed over the chosen classes, then over each unit's images: (U,)."""
        return np.bincount(self.rows, self.counts[key][:, self._class_index(cls)].sum(1), minlength=self.size)

    def ratio(self, metric: str, cls: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Numerator and denominator per unit of a ratio metric."""
        ones = np.bincount(self.rows, minlength=self.size).astype(np.float64)
        if metric == "count_mae":
            diff = self.counts["detected"] - self.counts["objects"]
            per_image = np.abs(diff[:, self._class_index(cls)].sum(1))
            return np.bincount(self.rows, per_image, minlength=self.size), ones
        if metric == "fp_per_image":
            return self.per_unit("detected", cls), ones
        if metric == "accuracy":
            return self.per_unit("correct", cls), self.per_unit("samples", cls)
        if metric in ("fg_attention", "fg_area"):  # means over the maps drawn (bgshift.saliency)
            summed = self.attention["attention" if metric == "fg_attention" else "attention_area"]
            return np.bincount(self.rows, summed, minlength=self.size), np.bincount(self.rows, self.attention["maps"], minlength=self.size)
        return self.per_unit("passed", cls), self.per_unit("foregrounds", cls)

    def category(self, cls: str) -> _Category:
        if cls not in self._categories:
            self._categories[cls] = self._prepare(cls)
        return self._categories[cls]

    def _prepare(self, cls: str) -> _Category:
        chosen = np.flatnonzero(self.det_class == cls)
        order = chosen[np.argsort(-self.det_score[chosen], kind="mergesort")]  # COCOeval's own sort
        units = self.det_unit[order]
        per_threshold = []
        for t in range(IOU_THRESHOLDS):
            matched, ignored = (self.det_matched[order] >> t) & 1 == 1, (self.det_ignored[order] >> t) & 1 == 1
            tp, fp = matched & ~ignored, ~matched & ~ignored  # an ignored detection is neither: it changes nothing
            before = np.cumsum(tp) - tp  # true positives ahead of each detection: its gap's index
            lone = fp & (before < tp.sum())  # false positives with a true positive after them
            gaps = scipy.sparse.csr_matrix((np.ones(lone.sum()), (before[lone], units[lone])), shape=(int(tp.sum()), self.size))
            per_threshold.append(_Threshold(units[tp], gaps))
        return _Category(per_threshold, self.per_unit("npos", cls))


def _curve(level: _Threshold, weights_t: np.ndarray, npos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's accumulate for one class at one IoU threshold under each column of `weights_t`
    (U, b): the precision envelope at each true positive and how many recall thresholds it
    covers, both (E, b). `npos`: (b,) the class's weighted objects. The reference arithmetic:
    the scored AP to the bit, and what the compiled replicates (kernel.py) are held to."""
    tpc = np.cumsum(weights_t[level.unit], axis=0)
    total = np.cumsum(level.gaps @ weights_t, axis=0)
    total += tpc
    total += np.spacing(1)
    precision = np.divide(tpc, total, out=total)
    with np.errstate(divide="ignore", invalid="ignore"):
        covered = np.searchsorted(RECALL_THRESHOLDS, tpc / npos, side="right")  # thresholds <= recall: COCO's search
    envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
    return envelope, np.diff(covered, axis=0, prepend=0)


def _precision_sum(level: _Threshold, weights_t: np.ndarray, npos: np.ndarray) -> np.ndarray:
    """Sum of the interpolated precision over the recall thresholds, per column of `weights_t`:
    _curve's arithmetic, compiled (kernel.py)."""
    gaps = level.gaps
    return kernel.precision_sums(level.unit, gaps.indptr, gaps.indices, gaps.data, weights_t, npos)


def ap_replicates(evaluation: Evaluation, metric: str, weights: np.ndarray) -> np.ndarray:
    """AP (AP, AP50, AP75, optionally /<class>) under each row of `weights`: (B,), nan where
    no class has an object in the resample. Classes run on two threads (numpy releases the GIL)."""
    family, _, cls = metric.partition("/")
    thresholds = IOU_INDEX[family]
    classes = [cls] if cls else evaluation.classes
    categories = [evaluation.category(name) for name in classes]
    npos = weights @ np.stack([cat.npos for cat in categories], axis=1)  # (B, K)
    weights_t, npos_t = np.ascontiguousarray(weights.T, dtype=np.float64), np.ascontiguousarray(npos.T)

    def one_class(k: int) -> np.ndarray:
        total = sum(_precision_sum(categories[k].thresholds[t], weights_t, npos_t[k]) for t in thresholds)
        return total / (len(RECALL_THRESHOLDS) * len(thresholds))

    with ThreadPoolExecutor(THREADS) as pool:
        sums = np.stack(list(pool.map(one_class, range(len(classes)))), axis=1)
    valid = npos > 0
    with np.errstate(invalid="ignore"):
        return np.where(valid, sums, 0).sum(1) / valid.sum(1)


def ap_point(evaluation: Evaluation, metric: str) -> float:
    """AP with every test image once, summarised as COCOeval summarises its precision table
    (the mean of the defined entries, in its order), so it equals the scored AP to the bit."""
    family, _, cls = metric.partition("/")
    thresholds = IOU_INDEX[family]
    classes = [cls] if cls else evaluation.classes
    recall_points = len(RECALL_THRESHOLDS)
    precision = -np.ones((len(thresholds), recall_points, len(classes)))
    ones = np.ones((evaluation.size, 1))
    for k, name in enumerate(classes):
        cat = evaluation.category(name)
        if cat.npos.sum() <= 0:
            continue
        for j, t in enumerate(thresholds):
            envelope, covered = _curve(cat.thresholds[t], ones, cat.npos @ ones)
            counts = np.append(covered[:, 0], recall_points - covered[:, 0].sum()).astype(np.int64)
            precision[j, :, k] = np.repeat(np.append(envelope[:, 0], 0.0), counts)
    defined = precision[precision > -1]
    return float(defined.mean()) if defined.size else float("nan")


def ratio_replicates(evaluation: Evaluation, metric: str, weights: np.ndarray) -> np.ndarray:
    family, _, cls = metric.partition("/")
    numerator, denominator = evaluation.ratio(family, cls or None)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ numerator) / (weights @ denominator)


def replicates(evaluation: Evaluation, metric: str, weights: np.ndarray) -> np.ndarray:
    """The metric under each row of `weights` (B, U)."""
    if metric_family(metric) in IOU_INDEX:
        return ap_replicates(evaluation, metric, weights)
    return ratio_replicates(evaluation, metric, weights)


def point(evaluation: Evaluation, metric: str) -> float:
    """The metric on the test set as it is (every image once): the scored value."""
    if metric_family(metric) in IOU_INDEX:
        return ap_point(evaluation, metric)
    return float(ratio_replicates(evaluation, metric, np.ones((1, evaluation.size)))[0])


def bootstrap_weights(units: int, replicates_: int, seed: int | list[int]) -> np.ndarray:
    """(B, U) counts of each unit in B resamples of the units with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(units, np.full(units, 1 / units), size=replicates_).astype(np.float64)
