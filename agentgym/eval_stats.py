"""The statistics of an evaluation: pass@k, confidence intervals, and paired tests.

Everything here is a plain function of counts or arrays, written out so it can be checked
by hand:

* :func:`pass_at_k`: the unbiased pass@k of one task from ``n`` samples, ``c`` of them
  correct (Chen et al., 2021): ``1 - C(n - c, k) / C(n, k)``;
* :func:`wilson_interval`: the 95% Wilson score interval of a rate;
* :func:`bootstrap_interval`: a percentile bootstrap interval of a mean over tasks;
* :func:`mcnemar_exact`: McNemar's exact test on paired successes (two-sided binomial on
  the discordant pairs);
* :func:`paired_bootstrap`: a two-sided bootstrap test of a mean paired difference;
* :func:`mean_interval`: the mean of a few seeds' results with its 95% t-interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from agentgym.errors import InvalidOptionError

Z95 = 1.959963984540054  # the normal quantile of 0.975


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of ``k`` samples drawn from ``n`` (``c`` correct) is.

    ``1 - C(n - c, k) / C(n, k)``, computed as a product so it never overflows.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise InvalidOptionError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, "
                                 f"k={k}")
    if n - c < k:
        return 1.0  # every k-subset holds a correct sample
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / trials`` (95% by default)."""
    if trials == 0:
        return 0.0, 1.0
    rate = successes / trials
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(rate * (1 - rate) / trials
                                                 + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(values: Sequence[float], resamples: int = 10_000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of ``values`` (one per task)."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, len(array), (resamples, len(array)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs.

    ``only_a``: pairs where A succeeded and B failed; ``only_b``: the reverse. Under the
    null each discordant pair is a fair coin, so ``p = min(1, 2 P(X <= min(b, c)))`` with
    ``X ~ Binomial(b + c, 1/2)``.
    """
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_bootstrap(differences: Sequence[float], resamples: int = 10_000,
                     seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Two-sided p-value that the mean of paired ``differences`` is 0, and its 95% interval.

    The differences are centred on 0 (the null) and resampled; ``p`` is the share of
    resampled means at least as far from 0 as the observed one.
    """
    diffs = np.asarray(differences, dtype=np.float64)
    if len(diffs) == 0:
        return 1.0, (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diffs), (resamples, len(diffs)))
    observed = diffs.mean()
    null_means = (diffs - observed)[picks].mean(axis=1)
    p = float((np.abs(null_means) >= abs(observed) - 1e-12).mean())
    means = diffs[picks].mean(axis=1)
    return p, (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


# t_{0.975, df} for df = 1 .. 30 (beyond, the normal quantile is within 0.1%)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """The mean of a few runs (seeds) and its 95% t-interval: ``(mean, low, high)``.

    One value has no spread to show: its interval is the value itself.
    """
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return mean, mean, mean
    df = len(array) - 1
    half = (_T975[df - 1] if df <= len(_T975) else Z95) * array.std(ddof=1) / math.sqrt(
        len(array))
    return mean, mean - half, mean + half
