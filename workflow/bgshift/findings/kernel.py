"""The inner loop of the AP replicates, compiled with numba: COCOeval's accumulate for one
class at one IoU threshold under thousands of weightings of the test images at once.

resample._curve is the reference (numpy, one array pass per step, the scored AP to the bit);
this is the same arithmetic in one backward pass over the true positives with a few numbers
per replicate, instead of a dozen passes over (true positives x replicates) arrays: the
running counts are whole numbers, so counting down from the totals gives the same values as
COCOeval's cumulative sums counting up. tests/test_findings.py holds the two together.
"""
from __future__ import annotations

import numba
import numpy as np

EPSILON = np.spacing(1)  # COCOeval's guard against 0 / 0 in the precision
# released GIL: classes run on threads side by side; numpy's error model: a class without
# objects in a resample gives nan (left out by the caller), not an exception
compiled = numba.njit(nogil=True, cache=True, error_model="numpy")


@compiled
def _add_row(counts: np.ndarray, row: np.ndarray, factor: float) -> None:
    for b in range(counts.shape[0]):
        counts[b] += factor * row[b]


@compiled
def _thresholds_covered(recall: float) -> float:
    """How many of COCO's recall thresholds (i * 0.01, i = 0..100) lie at or below `recall`:
    COCOeval's searchsorted without the search. Threshold i is i * 0.01 to the bit (as
    np.linspace builds it), so floor(100 r) is the count less one, give or take one that the
    two comparisons settle exactly (tests/test_findings.py checks it against the search)."""
    below = min(np.floor(recall * 100.0), 100.0)
    if (below + 1.0) * 0.01 <= recall:
        below += 1.0
    if below * 0.01 > recall:
        below -= 1.0
    return below + 1.0


@compiled
def precision_sums(units, gap_starts, gap_units, gap_counts, weights_t, npos):
    """Per replicate (column of `weights_t`, units x replicates): the interpolated precision
    summed over the 101 recall thresholds. `units`: the image unit of each true positive in
    score order; the false positives just before true positive e are gap_units[gap_starts[e]:
    gap_starts[e + 1]] (CSR), each `gap_counts` times; `npos`: the class's weighted objects."""
    replicates = weights_t.shape[1]
    tp, fp = np.zeros(replicates), np.zeros(replicates)
    for e in range(units.shape[0]):  # the totals: the counts at the last true positive
        _add_row(tp, weights_t[units[e]], 1.0)
        for j in range(gap_starts[e], gap_starts[e + 1]):
            _add_row(fp, weights_t[gap_units[j]], gap_counts[j])
    envelope, sums, covered_after = np.zeros(replicates), np.zeros(replicates), np.zeros(replicates)
    for e in range(units.shape[0] - 1, -1, -1):
        for b in range(replicates):
            precision = tp[b] / ((fp[b] + tp[b]) + EPSILON)
            covered = _thresholds_covered(tp[b] / npos[b])
            sums[b] += envelope[b] * (covered_after[b] - covered)  # true positive e + 1's thresholds
            envelope[b] = max(envelope[b], precision)
            covered_after[b] = covered
        _add_row(tp, weights_t[units[e]], -1.0)
        for j in range(gap_starts[e], gap_starts[e + 1]):
            _add_row(fp, weights_t[gap_units[j]], -gap_counts[j])
    for b in range(replicates):
        sums[b] += envelope[b] * covered_after[b]  # the first true positive's thresholds
    return sums
