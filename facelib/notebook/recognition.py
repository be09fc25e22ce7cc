"""Notebook 05: a recogniser that refuses strangers (open-set identification against an enrolled gallery)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def stranger_accept_by_size(stranger_scores, threshold: float, repeats: int = 200, seed: int = 0) -> dict:
    """How the share of strangers accepted grows with the number of enrolled people.

    ``stranger_scores`` [Q, C]: each stranger photo's cosine with each of C gallery rows. For every
    gallery size N = 1..C, ``repeats`` random sets of N rows are drawn (seeded); a stranger is accepted
    when its best score over the set reaches ``threshold``. Returns ``sizes`` [C], ``measured`` [C] (mean
    accept share), ``per_row`` (the share of single stranger-row comparisons that reach the threshold:
    the pair false-accept rate of this gallery) and ``independent`` [C] = 1 - (1 - per_row)^N, what N
    independent comparisons would give.
    """
    s = np.asarray(stranger_scores, np.float64)
    hit = s >= threshold                                    # [Q, C] comparisons that accept
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, s.shape[1] + 1)
    measured = np.array([np.mean([hit[:, rng.choice(s.shape[1], n, replace=False)].any(axis=1).mean()
                                  for _ in range(repeats)]) for n in sizes])
    per_row = float(hit.mean())
    return {"sizes": sizes, "measured": measured, "per_row": per_row, "independent": 1 - (1 - per_row) ** sizes}


def open_set_figure(known_best, known_correct, stranger_best, thresholds: Mapping[str, float],
                    growth: Mapping | None = None, strangers: str = "strangers") -> Figure:
    """Left: best gallery score of known people's new photos (right / wrong name) and of strangers, with
    the candidate thresholds. Right (with ``growth`` from :func:`stranger_accept_by_size`): strangers
    accepted against the number of enrolled people, at one fixed threshold. ``strangers`` names the
    stranger group in the legends (e.g. which of two groups was held out for the test)."""
    kb, kc, sb = (np.asarray(v) for v in (known_best, known_correct, stranger_best))
    fig = Figure(figsize=(11 if growth is not None else 6.5, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, 2 if growth is not None else 1))
    ax = axes[0]
    edges = np.linspace(min(kb.min(), sb.min()), max(kb.max(), sb.max()), 31)
    groups = [(kb[kc], "tab:green", f"known, right name ({kc.sum()})"),
              (kb[~kc], "tab:orange", f"known, wrong name ({(~kc).sum()})"),
              (sb, "tab:red", f"{strangers} ({len(sb)})")]
    for values, colour, label in groups:
        if len(values):  # an empty group has no density
            ax.hist(values, bins=edges, density=True, histtype="step", lw=1.6, color=colour, label=label)
    for (name, t), style in zip(thresholds.items(), ("--", ":", "-.")):
        ax.axvline(t, color="k", ls=style, lw=1.2, label=f"{name}: {t:.3f}")
    ax.set(xlabel="best cosine score against the gallery", ylabel="density")
    ax.set_title("who scores how high against the enrolled people", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    if growth is not None:
        ax = axes[1]
        ax.plot(growth["sizes"], growth["measured"], "o-", ms=3, label=f"{strangers}, measured (random galleries)")
        ax.plot(growth["sizes"], growth["independent"], "--", c="grey",
                label=f"1 - (1 - {growth['per_row']:.3f})^N, independent comparisons")
        ax.axhline(growth["per_row"], c="tab:red", ls=":", lw=1, label=f"one comparison: {growth['per_row']:.3f}")
        ax.set(xlabel="enrolled people N", ylabel="strangers accepted", ylim=(0, 1.02))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("a fixed threshold accepts more strangers as the gallery grows", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return fig
