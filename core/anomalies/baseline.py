"""The usual value of many series at once: same hour of the week, robust.

For an hour H the comparable hours are H minus 1..N weeks. With at least `MIN_WEEKS` of
them (hours before the data began do not count), the usual value is their median and its
spread the median absolute deviation (MAD); with fewer, the median and MAD of every hour
of the previous `FALLBACK_HOURS`. All of it is numpy over a (series x hours) matrix, so a
thousand series cost what one does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

WEEKS = 6
MIN_WEEKS = 3
FALLBACK_HOURS = 72
MAD_TO_SIGMA = 1.4826  # a normal distribution's sigma is 1.4826 MADs
Z = 5.0  # deviations above the median that count as unusual (times the sensitivity factor)
RELATIVE_FLOOR = 0.25  # the spread is at least this share of the median: steady series are not brittle

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Baseline:
    """Per series: the median, the robust spread (sigma-like), and whether there was any history."""

    median: Matrix
    spread: Matrix
    known: npt.NDArray[np.bool_]  # False where the series had no history at all

    def high(self, z: float | Matrix = Z) -> Matrix:
        """The edge above which a value is unusual at `z` spreads."""
        return self.median + z * self.spread

    def usual(self) -> tuple[Matrix, Matrix]:
        """The band shown as "usual": two spreads either side of the median, never below 0."""
        return np.maximum(self.median - USUAL_Z * self.spread, 0.0), self.median + USUAL_Z * self.spread


USUAL_Z = 2.0


def robust(history: Matrix) -> Baseline:
    """Median and spread of each row of `history` (NaN = no data for that hour)."""
    has_any = ~np.all(np.isnan(history), axis=1)
    filled = np.where(has_any[:, None], history, 0.0)
    median = np.nanmedian(filled, axis=1)
    mad = np.nanmedian(np.abs(filled - median[:, None]), axis=1)
    spread = np.maximum(MAD_TO_SIGMA * mad, RELATIVE_FLOOR * median)
    return Baseline(median=median, spread=spread, known=has_any & (np.nansum(filled, axis=1) > 0))


def seasonal(same_hour: Matrix, recent: Matrix, around: Matrix | None = None) -> Baseline:
    """The same-hour-of-week baseline where a series has `MIN_WEEKS` of it, else the recent one.

    `same_hour`: series x weeks (NaN before the data began); `recent`: series x the
    previous hours, likewise. `around`: the hours either side of the same hours; six values
    estimate a spread poorly (often too small), so the spread is at least the deviation of
    these eighteen from the median."""
    use_week = np.sum(~np.isnan(same_hour), axis=1) >= MIN_WEEKS
    by_week = robust(same_hour)
    if around is not None:
        wide = np.concatenate([same_hour, around], axis=1)
        has_any = ~np.all(np.isnan(wide), axis=1)
        deviation = np.abs(np.where(has_any[:, None], wide, 0.0) - by_week.median[:, None])
        by_week = Baseline(
            median=by_week.median,
            spread=np.maximum(by_week.spread, MAD_TO_SIGMA * np.nanmedian(deviation, axis=1)),
            known=by_week.known,
        )
    by_recent = robust(recent)
    return Baseline(
        median=np.where(use_week, by_week.median, by_recent.median),
        spread=np.where(use_week, by_week.spread, by_recent.spread),
        known=np.where(use_week, by_week.known | by_recent.known, by_recent.known),
    )
