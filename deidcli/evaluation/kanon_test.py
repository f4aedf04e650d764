"""The k-anonymity check of an anonymized set (methods.md section 12.1): at no rank position may the true person
appear with probability 1/k or more, with 95% confidence.

For each probe the recognizer ranks the gallery's people; ``ranks`` are where the true person landed. The share of
probes at each position gets a one-sided Clopper-Pearson upper bound, Bonferroni-corrected over the positions
tested; the set passes when every bound is below ``1/k``. A plain attack that only pushes the person to rank 2
fails: the ranking still gives them away.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta


def k_anonymity_rank_test(ranks, people: int, k: int, alpha: float = 0.05, positions: int | None = None) -> dict:
    """``ranks``: 1-based rank of the true person per probe; ``people``: gallery size; returns passed, the share
    per position ``p_hat``, its upper bound ``upper``, ``n`` and the largest bound."""
    ranks = np.asarray(ranks, dtype=int)
    j = min(positions or people, people)
    n = len(ranks)
    counts = np.bincount(ranks - 1, minlength=people)[:j]
    upper = np.ones(j)  # a position holding every probe has upper bound 1 (beta.ppf would be NaN there)
    some = counts < n
    upper[some] = beta.ppf(1 - alpha / j, counts[some] + 1, n - counts[some])
    return {"passed": bool(upper.max() < 1.0 / k), "p_hat": counts / max(n, 1), "upper": upper, "n": n, "k": k,
            "max_upper": float(upper.max()), "alpha": alpha}
