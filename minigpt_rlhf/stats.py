"""Confidence intervals: every number of the evaluation comes with one.

proportions   Wilson's score interval (Wilson, 1927)
means         a percentile bootstrap (Efron, 1979)
"""

from __future__ import annotations

import math
import statistics

import numpy as np


def z_score(confidence: float) -> float:
    """The normal quantile of a two-sided interval: 1.96 for 95%."""
    return statistics.NormalDist().inv_cdf((1 + confidence) / 2)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion k/n (Wilson, 1927). Unlike p ± z·sqrt(p(1-p)/n) it
    stays inside [0, 1] and is honest at 0/n and n/n, which small evaluations hit often:

        centre = (p + z²/2n) / (1 + z²/n),   half-width = z·sqrt(p(1−p)/n + z²/4n²) / (1 + z²/n)."""
    if n == 0:
        return (math.nan, math.nan)
    z, p = z_score(confidence), k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (
        max(0.0, min(p, centre - half)),
        min(1.0, max(p, centre + half)),
    )  # min/max: float rounding at 0/n


def bootstrap(
    values, confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean: resample the values with replacement, take the mean
    of each resample, and read the interval off the middle `confidence` of those means (Efron,
    1979)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return (math.nan, math.nan)
    means = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))].mean(1)
    alpha = (1 - confidence) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def proportion(flags, confidence: float = 0.95) -> dict:
    """A rate with its Wilson interval: {mean, lo, hi, n}."""
    flags = [bool(f) for f in flags]
    lo, hi = wilson(sum(flags), len(flags), confidence)
    return dict(mean=sum(flags) / len(flags) if flags else math.nan, lo=lo, hi=hi, n=len(flags))


def average(values, confidence: float = 0.95, resamples: int = 1000, seed: int = 0) -> dict:
    """A mean with its bootstrap interval: {mean, lo, hi, n}."""
    values = [float(v) for v in values]
    lo, hi = bootstrap(values, confidence, resamples, seed)
    mean = sum(values) / len(values) if values else math.nan
    # a constant sample's resampled means differ from its mean in the last bit: keep lo <= mean <=
    # hi
    return dict(mean=mean, lo=min(lo, mean), hi=max(hi, mean), n=len(values))
