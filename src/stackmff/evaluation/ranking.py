"""Statistical ranking of methods over many stacks, as in the paper: the Friedman test and
the Nemenyi critical difference (J. Demsar, "Statistical comparisons of classifiers over
multiple data sets", JMLR 7, 2006); for two methods the Wilcoxon signed-rank test, which
Demsar recommends there (Friedman needs three)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import friedmanchisquare, rankdata, studentized_range, t, wilcoxon


@dataclass
class Ranking:
    methods: list[str]
    mean_ranks: list[float]      # 1 = best
    test: str                    # "Friedman chi-square" or "Wilcoxon signed-rank"
    statistic: float
    p: float
    critical_difference: float   # Nemenyi, alpha = 0.05
    stacks: int


def rank_methods(scores: np.ndarray, methods: list[str], alpha: float = 0.05) -> Ranking:
    """``scores[stack, method]``, higher is better (e.g. PSNR)."""
    n, k = scores.shape
    if k < 2 or n < 2:
        raise ValueError(f"need at least 2 stacks and 2 methods, got {n} x {k}")
    ranks = np.array([rankdata(-row) for row in scores])
    mean_ranks = ranks.mean(axis=0)
    if k >= 3:
        test, (statistic, p) = "Friedman chi-square", friedmanchisquare(*scores.T)
    elif np.any(scores[:, 0] != scores[:, 1]):
        test, (statistic, p) = "Wilcoxon signed-rank", wilcoxon(scores[:, 0], scores[:, 1])
    else:
        test, statistic, p = "Wilcoxon signed-rank", 0.0, 1.0  # identical scores
    q = studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    cd = float(q * np.sqrt(k * (k + 1) / (6.0 * n)))
    order = np.argsort(mean_ranks)
    return Ranking([methods[i] for i in order], [float(mean_ranks[i]) for i in order],
                   test, float(statistic), float(p), cd, n)


@dataclass
class PairedDifference:
    """``a - b`` over the same stacks: mean, its 95% confidence interval (Student's t; NaN
    with one stack), and on how many stacks ``a`` is ahead and behind."""

    mean: float
    low: float
    high: float
    ahead: int
    behind: int


def paired_difference(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> PairedDifference:
    """Whether a difference of means is larger than the stack-to-stack spread says it could
    be by chance: a small mean gap over a dozen stacks often is not."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    if diff.size == 0:
        raise ValueError("need at least one stack")
    mean = float(diff.mean())
    if diff.size < 2:
        low = high = float("nan")
    else:
        half = t.ppf(0.5 + confidence / 2, diff.size - 1) * diff.std(ddof=1) / np.sqrt(diff.size)
        low, high = mean - float(half), mean + float(half)
    return PairedDifference(mean, low, high, int((diff > 0).sum()), int((diff < 0).sum()))
