"""Evaluation protocols on an :class:`~facelib.evaluation.embedding_set.EmbeddingSet`: probe/gallery selection, the auto
choice, typed results. Every search goes through :mod:`facelib.evaluation.retrieval`.

Which number means what (FACECOM: train and val identities are disjoint):

``gallery``      gallery = clean images, probes = their *own* distorted copies. This measures
                 matching a photo to its own original; pixel cosine (32 px) already scores
                 top-1 0.98 on FACECOM val with ``gallery="all"`` (0.73 with "mean"). It
                 does not measure recognising a person.
``cross-photo``  every probe (clean or distorted) is matched against gallery images of
                 *other* photos only; its own source photo and that photo's distortions
                 never take part. This is face recognition (pixel cosine top-1 on FACECOM
                 val: 0.13 with "all", 0.10 with "mean").
                 Only identities with >= 2 clean photos give probes; the others stay in the
                 gallery as distractors.
``closed``       the seed code's protocol: gallery from train identities, probes from val.
                 Probes whose identity has no gallery entry count as wrong (all of them on
                 FACECOM, whose splits are disjoint; :func:`detect_protocol` says so).
``verification`` same/different pairs of images from different photos: ROC AUC, EER, TAR@FAR.
``open-set``     a seeded half of the identities is held out of the gallery; DIR@FPIR.

Gallery modes (``gallery=``): ``"mean"`` (default) = one row per identity, the renormalised
mean of its clean embeddings; it is the usual choice and robust to one odd photo.
``"single"`` = the identity's first clean image (sorted path). ``"all"`` = every clean image;
a probe's score for an identity is its max over that identity's images.

Results are the dataclasses of :mod:`facelib.evaluation.results`; the gallery ranking that identification
protocols share is :func:`facelib.evaluation.ranking.rank_identities`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from facelib.config import PROTOCOL_NAMES
from facelib.errors import ConfigError, NotApplicable
from facelib.evaluation.embedding_set import EmbeddingSet
from facelib.evaluation.metrics import dir_at_fpir, l2_normalize, rate_key, verification_metrics
from facelib.evaluation.ranking import Ranking, check_gallery_mode, query_ranks, rank_identities, summarise
from facelib.evaluation.results import PROTOCOL_DESCRIPTIONS, Identification, OpenSet, Result, Verification
from facelib.evaluation.retrieval import masked_scores

__all__ = [
    "PROTOCOL_DESCRIPTIONS",
    "Identification",
    "Verification",
    "OpenSet",
    "closed_protocol",
    "gallery_protocol",
    "cross_photo_protocol",
    "cross_photo_retrieval",
    "verification_protocol",
    "open_set_protocol",
    "detect_protocol",
    "run_protocol",
]

_ALIASES = {
    "cross_photo": "cross-photo",
    "crossphoto": "cross-photo",
    "cross": "cross-photo",
    "open_set": "open-set",
    "openset": "open-set",
    "verify": "verification",
}


def _identification(protocol: str, mode: str, gset: EmbeddingSet, pset: EmbeddingSet, pidx: np.ndarray,
                    ranked: Ranking, **counts: int) -> Identification:
    names_ext = np.r_[ranked.names, np.array([""])]  # index -1 -> ""
    match = ranked.match_index
    return Identification(
        protocol=protocol,
        gallery=mode,
        n_gallery_images=ranked.n_images,
        n_gallery_identities=ranked.n_identities,
        probe_index=pidx,
        y_true=pset.identities[pidx],
        topk_identities=names_ext[ranked.top_ids],
        topk_scores=ranked.top_scores,
        gallery_identities=ranked.names,
        distortion=pset.distortions[pidx],
        probe_path=pset.paths[pidx],
        match_index=match,
        match_path=np.where(match >= 0, gset.paths[np.clip(match, 0, None)], ""),
        **counts,
    )


# --------------------------------------------------------------------------- protocols


def closed_protocol(train: EmbeddingSet, probes: EmbeddingSet, gallery: str = "mean", k: int = 5,
                    backend: str = "auto") -> Identification:
    """Seed-code protocol: gallery = clean train images per identity, probes = every image of ``probes``.

    Probes whose identity is absent from the gallery count as wrong (``n_probes_without_gallery``).
    If ``train`` has no clean image at all, all its images form the gallery.
    """
    mode = check_gallery_mode(gallery)
    gidx = np.flatnonzero(train.clean_mask)
    if len(gidx) == 0:
        gidx = np.arange(len(train))
    pidx = np.arange(len(probes))
    if len(pidx) == 0:
        raise NotApplicable("no probes")
    ranked = rank_identities(train, gidx, probes, pidx, mode, cross_photo=False, k=k, backend=backend)
    return _identification("closed", mode, train, probes, pidx, ranked)


def gallery_protocol(s: EmbeddingSet, gallery: str = "mean", k: int = 5, backend: str = "auto") -> Identification:
    """FACECOM hackathon protocol: gallery = clean images, probes = the distorted images.

    Each probe's own clean original sits in the gallery, so this measures matching a photo
    to its own original, not recognising a person (see :func:`cross_photo_protocol`).
    """
    mode = check_gallery_mode(gallery)
    gidx = np.flatnonzero(s.clean_mask)
    pidx = np.flatnonzero(~s.clean_mask)
    if len(pidx) == 0:
        raise NotApplicable("gallery protocol needs distorted images as probes; this set has none")
    ranked = rank_identities(s, gidx, s, pidx, mode, cross_photo=False, k=k, backend=backend)
    return _identification("gallery", mode, s, s, pidx, ranked)


def _photos_per_identity(s: EmbeddingSet, mask: np.ndarray) -> dict[str, int]:
    pairs = set(zip(s.identities[mask].tolist(), s.photos[mask].tolist()))
    out: dict[str, int] = {}
    for ident, _ in pairs:
        out[ident] = out.get(ident, 0) + 1
    return out


def _cross_photo_split(s: EmbeddingSet) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, int]]:
    """Gallery indices (clean images), probe indices (every image of an identity with >= 2 clean
    photos), those identities (sorted), and the clean-photo count of every identity."""
    clean = s.clean_mask
    n_photos = _photos_per_identity(s, clean)
    multi = sorted(i for i, n in n_photos.items() if n >= 2)
    return np.flatnonzero(clean), np.flatnonzero(np.isin(s.identities, multi)), multi, n_photos


def cross_photo_protocol(s: EmbeddingSet, gallery: str = "mean", k: int = 5, backend: str = "auto") -> Identification:
    """Recognition across photos: no probe is ever compared with its own source photo.

    Gallery = clean images of every identity. Probes = every image (clean or distorted) of
    identities with >= 2 clean photos; each is scored against gallery images of OTHER photos
    only. Single-photo identities stay in the gallery as distractors.
    """
    mode = check_gallery_mode(gallery)
    gidx, pidx, multi, n_photos = _cross_photo_split(s)
    if len(pidx) == 0:
        raise NotApplicable(
            "cross-photo protocol needs identities with at least 2 clean photos; this set has none "
            f"({len(n_photos)} identities, all single-photo)"
        )
    ranked = rank_identities(s, gidx, s, pidx, mode, cross_photo=True, k=k, backend=backend)
    return _identification("cross-photo", mode, s, s, pidx, ranked, n_probe_identities=len(multi),
                           n_distractor_identities=len(n_photos) - len(multi),
                           n_excluded_images=int(len(s) - len(pidx)))


def cross_photo_retrieval(s: EmbeddingSet, ks: Sequence[int] = (1, 5, 10), chunk: int = 1024) -> dict[str, Any]:
    """Image retrieval across photos: mAP and Recall@K (:mod:`facelib.evaluation.ranking`), as in OML and PML.

    The cross-photo split of :func:`cross_photo_protocol` with an all-images gallery: queries =
    every image of identities with >= 2 clean photos, gallery = every clean image, a query's own
    source photo hidden. Each query's ranking of the whole gallery is scored (every other photo of
    its person counts), ``chunk`` queries at a time, so memory stays ``chunk x G``.
    Returns ``{"map", "recall_at_<k>"..., "n_queries", "n_queries_without_match", "n_gallery"}``;
    ``recall_at_1`` equals the protocol's top-1 with ``gallery="all"``.
    """
    g, q, _, _ = _cross_photo_split(s)
    if len(q) == 0:
        raise NotApplicable("cross-photo retrieval needs identities with at least 2 clean photos; this set has none")
    _, photo = np.unique(s.photos, return_inverse=True)  # int photo ids: the groups of the search
    first, ap = [], []
    for lo in range(0, len(q), chunk):
        qi = q[lo:lo + chunk]
        scores = masked_scores(s.embeddings[qi], s.embeddings[g], photo[qi], photo[g])
        f, a = query_ranks(scores, s.identities[qi], s.identities[g])
        first.append(f)
        ap.append(a)
    return dict(summarise(np.concatenate(first), np.concatenate(ap), ks), n_gallery=int(len(g)))


def _genuine_pairs(s: EmbeddingSet, max_genuine: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """All (i, j), i < j, same identity and different photo; seeded subsample to ``max_genuine``."""
    order = np.lexsort((s.photos, s.identities))
    ids = s.identities[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(order)]
    chunks = []
    for a, b in zip(starts, ends):
        if b - a < 2:
            continue
        members = order[a:b]
        i, j = np.triu_indices(b - a, 1)
        keep = s.photos[members[i]] != s.photos[members[j]]
        if keep.any():
            chunks.append(np.stack([members[i[keep]], members[j[keep]]], 1))
    pairs = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.int64)
    total = len(pairs)
    if total > max_genuine:
        pairs = pairs[np.sort(rng.choice(total, max_genuine, replace=False))]
    return pairs.astype(np.int64), total


def _impostor_pairs(s: EmbeddingSet, n: int, rng: np.random.Generator) -> np.ndarray:
    ids = s.identities
    if len(np.unique(ids)) < 2:
        raise NotApplicable("verification needs at least 2 identities for impostor pairs")
    out = np.zeros((0, 2), np.int64)
    while len(out) < n:
        m = int((n - len(out)) * 1.3) + 16
        cand = rng.integers(0, len(s), size=(m, 2))
        cand = cand[ids[cand[:, 0]] != ids[cand[:, 1]]]
        out = np.concatenate([out, cand])
    return out[:n]


def verification_protocol(
    s: EmbeddingSet,
    n_negatives_per_positive: float = 1.0,
    n_impostors: int | None = None,
    max_genuine: int = 200_000,
    seed: int = 0,
    fars: Sequence[float] = (1e-1, 1e-2, 1e-3),
) -> Verification:
    """Same/different pairs across different photos.

    Genuine pairs: every pair of images (clean or distorted) of one identity from different
    photos; above ``max_genuine`` a seeded subsample is taken (``genuine_subsampled``).
    Impostor pairs: ``n_impostors`` (default ``n_negatives_per_positive`` x genuine) seeded
    random pairs of different identities. Score = cosine; rates from
    :func:`~facelib.evaluation.metrics.verification_metrics` at each of ``fars``.
    """
    rng = np.random.default_rng(seed)
    gen, total = _genuine_pairs(s, max_genuine, rng)
    if len(gen) == 0:
        raise NotApplicable("verification needs an identity with images from 2 different photos; none found")
    n_imp = int(n_impostors) if n_impostors is not None else max(1, int(round(n_negatives_per_positive * len(gen))))
    imp = _impostor_pairs(s, n_imp, rng)
    pairs = np.concatenate([gen, imp])
    same = np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]
    E = l2_normalize(s.embeddings)
    scores = np.einsum("ij,ij->i", E[pairs[:, 0]], E[pairs[:, 1]]).astype(np.float32)
    fars = tuple(dict.fromkeys(float(f) for f in fars))
    m = verification_metrics(scores, same, fars=fars)
    return Verification(
        scores=scores, same=same, pairs=pairs, roc_auc=m["roc_auc"], eer=m["eer"], eer_threshold=m["eer_threshold"],
        tar_at_far={f: m[f"tar_at_far_{rate_key(f)}"] for f in fars},
        threshold_at_far={f: m[f"threshold_at_far_{rate_key(f)}"] for f in fars},
        best_accuracy=m["best_accuracy"], best_threshold=m["best_threshold"], n_genuine=m["n_genuine"],
        n_impostor=m["n_impostor"], n_genuine_available=int(total), genuine_subsampled=bool(total > len(gen)),
        seed=int(seed),
    )


def open_set_protocol(
    s: EmbeddingSet,
    gallery: str = "mean",
    known_fraction: float = 0.5,
    seed: int = 0,
    fpirs: Sequence[float] = (0.1, 0.01),
    threshold: float | None = None,
    cross_photo: bool = True,
    k: int = 5,
    backend: str = "auto",
) -> OpenSet:
    """Open-set identification with a seeded ``known_fraction`` of identities in the gallery.

    Known probes: with ``cross_photo`` (default) every image of a known identity with >= 2
    clean photos, scored against other photos only; otherwise the distorted images of known
    identities. Unknown probes: every image (``cross_photo``) or every distorted image of the
    held-out identities. Reports :func:`~facelib.evaluation.metrics.dir_at_fpir`; ``open_threshold`` is
    ``threshold`` if given, else the threshold at the first FPIR.
    """
    mode = check_gallery_mode(gallery)
    clean = s.clean_mask
    with_clean = sorted(set(s.identities[clean].tolist()))
    if len(with_clean) < 2:
        raise NotApplicable("open-set protocol needs at least 2 identities with clean images")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(with_clean))
    n_known = min(max(1, int(round(known_fraction * len(with_clean)))), len(with_clean) - 1)
    known = sorted(with_clean[i] for i in perm[:n_known])
    is_known = np.isin(s.identities, known)
    gidx = np.flatnonzero(clean & is_known)
    if cross_photo:
        n_photos = _photos_per_identity(s, clean)
        multi = [i for i in known if n_photos.get(i, 0) >= 2]
        known_p = np.flatnonzero(np.isin(s.identities, multi))
        unknown_p = np.flatnonzero(~is_known)
    else:
        known_p = np.flatnonzero(is_known & ~clean)
        unknown_p = np.flatnonzero(~is_known & ~clean)
    if len(known_p) == 0 or len(unknown_p) == 0:
        raise NotApplicable(f"open-set needs known and unknown probes; got {len(known_p)} and {len(unknown_p)}")
    pidx = np.r_[known_p, unknown_p]
    ranked = rank_identities(s, gidx, s, pidx, mode, cross_photo=cross_photo, k=k, backend=backend)
    best = ranked.top_scores[:, 0]
    y_true = s.identities[pidx]
    y_pred = ranked.names[np.clip(ranked.top_ids[:, 0], 0, None)]
    nk = len(known_p)
    fpirs = tuple(float(f) for f in fpirs)
    d = dir_at_fpir(best[:nk], y_pred[:nk] == y_true[:nk], best[nk:], fpirs=fpirs)
    thr_at = {f: d[f"threshold_at_fpir_{rate_key(f)}"] for f in fpirs}
    if threshold is not None:
        t = float(threshold)
    else:
        t = thr_at[fpirs[0]] if fpirs else -np.inf
    return OpenSet(
        gallery=mode, cross_photo=bool(cross_photo), n_gallery_identities=ranked.n_identities,
        n_gallery_images=ranked.n_images, n_heldout_identities=len(with_clean) - n_known, seed=int(seed),
        n_known=d["n_known"], n_unknown=d["n_unknown"], rank1_known=d["rank1_known"],
        dir_at_fpir={f: d[f"dir_at_fpir_{rate_key(f)}"] for f in fpirs}, threshold_at_fpir=thr_at,
        fpir_actual={f: d[f"fpir_actual_{rate_key(f)}"] for f in fpirs}, probe_index=pidx,
        known=np.r_[np.ones(nk, bool), np.zeros(len(unknown_p), bool)], y_true=y_true, y_pred=y_pred,
        best_score=best, open_threshold=float(t), threshold=None if threshold is None else float(threshold),
    )


# --------------------------------------------------------------------------- dispatch


def detect_protocol(train_identities: Sequence[str] | None, val_identities: Sequence[str]) -> tuple[str, str]:
    """``("closed", reason)`` when every val identity is in train, else ``("cross-photo", reason)``."""
    val = set(map(str, val_identities))
    if train_identities is None:
        return "cross-photo", "no train set given: using cross-photo on the val set"
    train = set(map(str, train_identities))
    shared = len(val & train)
    if val and shared == len(val):
        return "closed", f"all {len(val)} val identities appear in train: closed-set identification"
    if shared == 0:
        return "cross-photo", (
            f"val identities are disjoint from train (0 of {len(val)} shared): closed-set scores "
            "would be 0; using cross-photo"
        )
    return "cross-photo", (
        f"only {shared} of {len(val)} val identities appear in train: closed-set would count "
        f"{len(val) - shared} identities as wrong by construction; using cross-photo"
    )


def run_protocol(
    name: str,
    probes: EmbeddingSet,
    train: EmbeddingSet | None = None,
    gallery: str = "mean",
    **kw: Any,
) -> Result:
    """Run one protocol by name: closed, gallery, cross-photo, verification, open-set, or auto.

    ``auto`` uses :func:`detect_protocol` (closed when ``train`` is given and covers every
    val identity, else cross-photo) and records ``protocol_reason``. ``kw`` goes to the
    protocol function.
    """
    key = _ALIASES.get(name.lower().strip(), name.lower().strip())
    reason = None
    if key == "auto":
        key, reason = detect_protocol(train.identity_names if train is not None else None, probes.identity_names)
    if key not in PROTOCOL_RUNNERS:
        raise ConfigError(f"unknown protocol {name!r}; choose from {PROTOCOL_NAMES + ('auto',)}", fields=("protocol",))
    out = PROTOCOL_RUNNERS[key](probes, train, gallery, **kw)
    if reason is not None:
        out.protocol_reason = reason
    return out


def _closed(probes: EmbeddingSet, train: EmbeddingSet | None, gallery: str, **kw: Any) -> Identification:
    if train is None:
        raise ValueError("the closed protocol needs a train set for its gallery")
    return closed_protocol(train, probes, gallery=gallery, **kw)


# (probes, train, gallery, **kw) -> result, for each name of facelib.config.PROTOCOL_NAMES, in its order
PROTOCOL_RUNNERS: dict[str, Callable[..., Result]] = dict(zip(PROTOCOL_NAMES, (
    _closed,
    lambda probes, train, gallery, **kw: gallery_protocol(probes, gallery=gallery, **kw),
    lambda probes, train, gallery, **kw: cross_photo_protocol(probes, gallery=gallery, **kw),
    lambda probes, train, gallery, **kw: verification_protocol(probes, **kw),
    lambda probes, train, gallery, **kw: open_set_protocol(probes, gallery=gallery, **kw),
), strict=True))
