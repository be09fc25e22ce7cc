"""Evaluation protocols on an :class:`EmbeddingSet`.

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

Identification results are dicts of JSON-ready values plus an ``"_arrays"`` entry (numpy
arrays for reports and plots) that :func:`to_jsonable` strips.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from facelib.io import atomic_path
from facelib.metrics import (
    dir_at_fpir,
    identification_metrics,
    l2_normalize,
    per_group_accuracy,
    rate_key,
    topk_accuracy,
    verification_metrics,
)

__all__ = [
    "EmbeddingSet",
    "GALLERY_MODES",
    "PROTOCOLS",
    "PROTOCOL_DESCRIPTIONS",
    "closed_protocol",
    "gallery_protocol",
    "cross_photo_protocol",
    "verification_protocol",
    "open_set_protocol",
    "pixel_baseline",
    "detect_protocol",
    "run_protocol",
    "to_jsonable",
    "format_result",
]

GALLERY_MODES: tuple[str, ...] = ("single", "mean", "all")
PROTOCOLS: tuple[str, ...] = ("closed", "gallery", "cross-photo", "verification", "open-set")
PROTOCOL_DESCRIPTIONS: dict[str, str] = {
    "closed": "gallery = train identities (clean images), probes = val images; probes whose identity "
    "is not in the gallery count as wrong",
    "gallery": "gallery = clean images, probes = their own distorted copies: measures matching a photo "
    "to its own original (pixel cosine top-1 on FACECOM val: 0.98 all-images gallery, 0.73 mean), "
    "not recognising a person",
    "cross-photo": "each probe is matched only against gallery images of OTHER photos (its own source "
    "photo and its distortions excluded): measures recognising the person (pixel cosine top-1 on FACECOM "
    "val: 0.13 all-images gallery, 0.10 mean)",
    "verification": "same/different-identity pairs of images from different photos",
    "open-set": "a seeded part of the identities is held out of the gallery; probes of held-out "
    "identities must be rejected (DIR@FPIR)",
}
_ALIASES = {
    "cross_photo": "cross-photo",
    "crossphoto": "cross-photo",
    "cross": "cross-photo",
    "open_set": "open-set",
    "openset": "open-set",
    "verify": "verification",
}


# --------------------------------------------------------------------------- EmbeddingSet


def _str_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray) and x.dtype.kind == "U":
        return x
    return np.array([str(v) for v in x], dtype=str) if len(x) else np.zeros(0, dtype="<U1")


@dataclass
class EmbeddingSet:
    """Embeddings with the per-image facts every protocol needs.

    Attributes:
        embeddings: [N, D] float32, L2-normalised rows.
        identities: [N] str.
        photos: [N] str source-photo id (``identity/stem``), shared by a clean image and its distortions.
        distortions: [N] str, ``""`` for a clean image, else the kind (``"foggy"``...).
        paths: [N] str image paths.
    """

    embeddings: np.ndarray
    identities: np.ndarray
    photos: np.ndarray
    distortions: np.ndarray
    paths: np.ndarray

    def __post_init__(self) -> None:
        e = self.embeddings
        if hasattr(e, "detach"):
            e = e.detach().cpu().numpy()
        self.embeddings = np.asarray(e, dtype=np.float32)
        if self.embeddings.ndim != 2:
            raise ValueError(f"embeddings must be [N, D], got shape {self.embeddings.shape}")
        n = len(self.embeddings)
        for name in ("identities", "photos", "distortions", "paths"):
            arr = _str_array(getattr(self, name))
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} entries for {n} embeddings")
            setattr(self, name, arr)

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def clean_mask(self) -> np.ndarray:
        """[N] bool, true for clean (undistorted) images."""
        return self.distortions == ""

    @property
    def identity_names(self) -> list[str]:
        """Sorted distinct identities."""
        return sorted(set(self.identities.tolist()))

    def subset(self, mask) -> "EmbeddingSet":
        """The rows selected by a [N] bool mask or an integer index array."""
        m = np.asarray(mask)
        return EmbeddingSet(
            self.embeddings[m], self.identities[m], self.photos[m], self.distortions[m], self.paths[m]
        )

    @classmethod
    def from_samples(cls, embeddings, samples: Sequence) -> "EmbeddingSet":
        """Build from embeddings [N, D] and ``facelib.data.Sample`` objects in the same order."""
        return cls(
            embeddings,
            [s.identity for s in samples],
            [s.photo for s in samples],
            [s.distortion for s in samples],
            [str(s.path) for s in samples],
        )

    def to_npz(self, path: str | os.PathLike) -> Path:
        """Save atomically to ``path`` (exactly that name; keys: embeddings, paths, identities, distortions, photos)."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: numpy must not append ".npz" to the temp name
                np.savez(
                    f,
                    embeddings=self.embeddings,
                    paths=self.paths,
                    identities=self.identities,
                    distortions=self.distortions,
                    photos=self.photos,
                )
        return Path(path)

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> "EmbeddingSet":
        """Load a file written by :meth:`to_npz` (``path`` or ``path + '.npz'``)."""
        p = Path(path)
        if not p.exists() and Path(str(p) + ".npz").exists():
            p = Path(str(p) + ".npz")
        with np.load(p, allow_pickle=False) as z:
            missing = {"embeddings", "paths", "identities", "distortions", "photos"} - set(z.files)
            if missing:
                raise ValueError(f"{p}: not an EmbeddingSet file (missing {sorted(missing)})")
            return cls(z["embeddings"], z["identities"], z["photos"], z["distortions"], z["paths"])


# --------------------------------------------------------------------------- core ranking


def _check_mode(gallery: str) -> str:
    if gallery not in GALLERY_MODES:
        raise ValueError(f"gallery must be one of {GALLERY_MODES}, got {gallery!r}")
    return gallery


def _topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    s, i = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k, dim=1)
    return s.numpy(), i.numpy().astype(np.int64)


def _identify(
    gset: EmbeddingSet,
    gidx: np.ndarray,
    pset: EmbeddingSet,
    pidx: np.ndarray,
    mode: str,
    cross_photo: bool,
    k: int = 5,
    chunk: int = 2048,
) -> dict:
    """Rank gallery identities for each probe, chunk by chunk (memory ~ chunk x gallery images).

    Args:
        gset, gidx: gallery images (indices into ``gset``).
        pset, pidx: probes (indices into ``pset``).
        cross_photo: for each probe, drop every gallery image of its own source photo
            (``"all"``: mask; ``"mean"``: own identity's mean over its other photos, computed
            as identity sum minus photo sum; ``"single"``: first clean image of another photo).
    Returns:
        names [C] gallery identities; top_scores [Q, k]; top_ids [Q, k] (index into names,
        -1 if nothing allowed); match_index [Q] (index into gset of the best allowed gallery
        image of the predicted identity, for display; -1 if none); n_images; n_identities.
    """
    gidx = np.asarray(gidx, dtype=np.int64)
    pidx = np.asarray(pidx, dtype=np.int64)
    if len(gidx) == 0:
        raise ValueError("the gallery is empty (no clean images to build it from)")
    order = np.lexsort((gset.paths[gidx], gset.identities[gidx]))
    gidx = gidx[order]
    names, row_ident = np.unique(gset.identities[gidx], return_inverse=True)
    n_ids = len(names)
    starts = np.flatnonzero(np.r_[True, row_ident[1:] != row_ident[:-1]])
    counts = np.diff(np.r_[starts, len(gidx)])
    G = l2_normalize(gset.embeddings[gidx])
    P = l2_normalize(pset.embeddings[pidx])
    n_q = len(P)
    k = int(min(k, n_ids))

    # padded [C, L] column lists per identity, for the display match
    L = int(counts.max())
    pad = np.full((n_ids, L), -1, dtype=np.int64)
    within = np.arange(len(gidx)) - starts[row_ident]
    pad[row_ident, within] = np.arange(len(gidx))

    g_ph = q_ph = None
    own_col = np.full(n_q, -1, dtype=np.int64)
    own_score = None
    if cross_photo:
        vocab, codes = np.unique(np.r_[gset.photos[gidx], pset.photos[pidx]], return_inverse=True)
        g_ph, q_ph = codes[: len(gidx)], codes[len(gidx) :]
        q_names = pset.identities[pidx]
        pos = np.clip(np.searchsorted(names, q_names), 0, n_ids - 1)
        own_col = np.where(names[pos] == q_names, pos, -1)

    rep = None
    if mode == "mean":
        sums = np.add.reduceat(G.astype(np.float64), starts, axis=0)
        rep = l2_normalize(sums)
        if cross_photo:
            # per-photo sums of gallery rows; probe photos absent from the gallery map to a zero row
            ph_u, ph_inv = np.unique(g_ph, return_inverse=True)
            ph_sum = np.zeros((len(ph_u) + 1, G.shape[1]), np.float64)
            by_ph = np.argsort(ph_inv, kind="stable")
            ph_starts = np.flatnonzero(np.r_[True, np.diff(ph_inv[by_ph]) != 0])
            ph_sum[: len(ph_u)] = np.add.reduceat(G[by_ph].astype(np.float64), ph_starts, axis=0)
            ph_cnt = np.r_[np.bincount(ph_inv, minlength=len(ph_u)), 0]
            j = np.clip(np.searchsorted(ph_u, q_ph), 0, max(len(ph_u) - 1, 0))
            q_phrow = np.where(ph_u[j] == q_ph, j, len(ph_u))
            own_score = np.full(n_q, -np.inf, dtype=np.float32)
            for a in range(0, n_q, chunk):
                b = min(a + chunk, n_q)
                oc = own_col[a:b]
                ok = oc >= 0
                if not ok.any():
                    continue
                vec = sums[oc[ok]] - ph_sum[q_phrow[a:b][ok]]
                left = counts[oc[ok]] - ph_cnt[q_phrow[a:b][ok]]
                sc = np.einsum("ij,ij->i", l2_normalize(vec), P[a:b][ok])
                own_score[a:b][ok] = np.where(left > 0, sc, -np.inf)
    elif mode == "single":
        rep = G[starts]
        if cross_photo:
            first_ph = g_ph[starts]
            other = np.flatnonzero(g_ph != first_ph[row_ident])
            second = np.full(n_ids, -1, dtype=np.int64)
            ids_o, first_o = np.unique(row_ident[other], return_index=True)
            second[ids_o] = other[first_o]
            own_score = np.full(n_q, -np.inf, dtype=np.float32)
            ok = own_col >= 0
            oc = own_col[ok]
            row = np.where(first_ph[oc] != q_ph[ok], starts[oc], second[oc])
            sc = np.einsum("ij,ij->i", G[np.clip(row, 0, None)], P[ok])
            own_score[ok] = np.where(row >= 0, sc, -np.inf)

    top_s = np.empty((n_q, k), np.float32)
    top_c = np.empty((n_q, k), np.int64)
    match = np.full(n_q, -1, dtype=np.int64)
    for a in range(0, n_q, chunk):
        b = min(a + chunk, n_q)
        r = np.arange(b - a)
        s_img = P[a:b] @ G.T  # [c, M]
        if cross_photo:
            s_img[q_ph[a:b, None] == g_ph[None, :]] = -np.inf
        if mode == "all":
            s_id = np.maximum.reduceat(s_img, starts, axis=1)
        else:
            s_id = P[a:b] @ rep.T  # [c, C]
            if own_score is not None:
                ok = own_col[a:b] >= 0
                s_id[r[ok], own_col[a:b][ok]] = own_score[a:b][ok]
        ts, tc = _topk(s_id, k)
        tc[np.isneginf(ts)] = -1
        top_s[a:b], top_c[a:b] = ts, tc
        cols = pad[np.clip(tc[:, 0], 0, None)]  # [c, L]
        vals = s_img[r[:, None], np.clip(cols, 0, None)]
        vals[cols < 0] = -np.inf
        best = np.argmax(vals, axis=1)
        col = cols[r, best]
        good = (tc[:, 0] >= 0) & np.isfinite(vals[r, best])
        match[a:b] = np.where(good, gidx[np.clip(col, 0, None)], -1)
    return {
        "names": names,
        "top_scores": top_s,
        "top_ids": top_c,
        "match_index": match,
        "n_images": int(len(gidx)),
        "n_identities": int(n_ids),
    }


def _identification_result(
    protocol: str,
    mode: str,
    gset: EmbeddingSet,
    pset: EmbeddingSet,
    pidx: np.ndarray,
    ranked: dict,
    **extra: Any,
) -> dict:
    names = ranked["names"]
    top_c = ranked["top_ids"]
    top_s = ranked["top_scores"]
    y_true = pset.identities[pidx]
    names_ext = np.r_[names, np.array([""])]  # index -1 -> ""
    topk_names = names_ext[top_c]
    y_pred = topk_names[:, 0] if top_c.shape[1] else np.full(len(pidx), "", dtype=str)
    correct = y_pred == y_true
    idm = identification_metrics(y_true, y_pred)
    dist = pset.distortions[pidx]
    groups = np.where(dist == "", "clean", dist)
    in_gallery = np.isin(y_true, names)
    match = ranked["match_index"]
    match_path = np.where(match >= 0, gset.paths[np.clip(match, 0, None)], "")
    result = {
        "protocol": protocol,
        "description": PROTOCOL_DESCRIPTIONS[protocol],
        "gallery": mode,
        "gallery_unit": "images" if mode == "all" else "identities",
        "n_gallery": ranked["n_images"] if mode == "all" else ranked["n_identities"],
        "n_gallery_images": ranked["n_images"],
        "n_gallery_identities": ranked["n_identities"],
        "top1": idm["top1"],
        "top5": topk_accuracy(y_true, topk_names, 5),
        "macro_f1": idm["macro_f1"],
        "n_probes": int(len(pidx)),
        "n_identities": int(len(np.unique(y_true))),
        "n_probes_without_gallery": int((~in_gallery).sum()),
        "per_distortion": per_group_accuracy(correct, groups) if len(pidx) else {},
    }
    result.update(extra)
    result["_arrays"] = {
        "probe_index": pidx,
        "y_true": y_true,
        "y_pred": y_pred,
        "correct": correct,
        "best_score": top_s[:, 0] if top_s.shape[1] else np.zeros(len(pidx), np.float32),
        "topk_scores": top_s,
        "topk_index": top_c,
        "topk_identities": topk_names,
        "gallery_identities": names,
        "distortion": dist,
        "probe_path": pset.paths[pidx],
        "match_index": match,
        "match_path": match_path,
    }
    return result


# --------------------------------------------------------------------------- protocols


def closed_protocol(train: EmbeddingSet, probes: EmbeddingSet, gallery: str = "mean", k: int = 5) -> dict:
    """Seed-code protocol: gallery = clean train images per identity, probes = every image of ``probes``.

    Probes whose identity is absent from the gallery count as wrong; ``n_probes_without_gallery``
    says how many. If ``train`` has no clean image at all, all its images form the gallery.
    """
    mode = _check_mode(gallery)
    gidx = np.flatnonzero(train.clean_mask)
    if len(gidx) == 0:
        gidx = np.arange(len(train))
    pidx = np.arange(len(probes))
    if len(pidx) == 0:
        raise ValueError("no probes")
    ranked = _identify(train, gidx, probes, pidx, mode, cross_photo=False, k=k)
    return _identification_result("closed", mode, train, probes, pidx, ranked)


def gallery_protocol(s: EmbeddingSet, gallery: str = "mean", k: int = 5) -> dict:
    """FACECOM hackathon protocol: gallery = clean images, probes = the distorted images.

    Each probe's own clean original sits in the gallery, so this measures matching a photo
    to its own original, not recognising a person (see :func:`cross_photo_protocol`).
    """
    mode = _check_mode(gallery)
    gidx = np.flatnonzero(s.clean_mask)
    pidx = np.flatnonzero(~s.clean_mask)
    if len(pidx) == 0:
        raise ValueError("gallery protocol needs distorted images as probes; this set has none")
    ranked = _identify(s, gidx, s, pidx, mode, cross_photo=False, k=k)
    return _identification_result("gallery", mode, s, s, pidx, ranked)


def _photos_per_identity(s: EmbeddingSet, mask: np.ndarray) -> dict[str, int]:
    pairs = set(zip(s.identities[mask].tolist(), s.photos[mask].tolist()))
    out: dict[str, int] = {}
    for ident, _ in pairs:
        out[ident] = out.get(ident, 0) + 1
    return out


def cross_photo_protocol(s: EmbeddingSet, gallery: str = "mean", k: int = 5) -> dict:
    """Recognition across photos: no probe is ever compared with its own source photo.

    Gallery = clean images of every identity. Probes = every image (clean or distorted) of
    identities with >= 2 clean photos; each is scored against gallery images of OTHER photos
    only. Single-photo identities stay in the gallery as distractors.
    """
    mode = _check_mode(gallery)
    clean = s.clean_mask
    gidx = np.flatnonzero(clean)
    n_photos = _photos_per_identity(s, clean)
    multi = sorted(i for i, n in n_photos.items() if n >= 2)
    pidx = np.flatnonzero(np.isin(s.identities, multi))
    if len(pidx) == 0:
        raise ValueError(
            "cross-photo protocol needs identities with at least 2 clean photos; this set has none "
            f"({len(n_photos)} identities, all single-photo)"
        )
    ranked = _identify(s, gidx, s, pidx, mode, cross_photo=True, k=k)
    return _identification_result(
        "cross-photo",
        mode,
        s,
        s,
        pidx,
        ranked,
        n_probe_identities=len(multi),
        n_distractor_identities=len(n_photos) - len(multi),
        n_excluded_images=int(len(s) - len(pidx)),
    )


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
        raise ValueError("verification needs at least 2 identities for impostor pairs")
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
) -> dict:
    """Same/different pairs across different photos.

    Genuine pairs: every pair of images (clean or distorted) of one identity from different
    photos; above ``max_genuine`` a seeded subsample is taken (``genuine_subsampled`` says so).
    Impostor pairs: ``n_impostors`` (default ``n_negatives_per_positive`` x genuine) seeded
    random pairs of different identities. Score = cosine. Returns
    :func:`~facelib.metrics.verification_metrics` plus counts, and ``_arrays`` with
    ``scores``, ``same``, ``pairs`` [N, 2].
    """
    rng = np.random.default_rng(seed)
    gen, total = _genuine_pairs(s, max_genuine, rng)
    if len(gen) == 0:
        raise ValueError("verification needs an identity with images from 2 different photos; none found")
    n_imp = int(n_impostors) if n_impostors is not None else max(1, int(round(n_negatives_per_positive * len(gen))))
    imp = _impostor_pairs(s, n_imp, rng)
    pairs = np.concatenate([gen, imp])
    same = np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]
    E = l2_normalize(s.embeddings)
    scores = np.einsum("ij,ij->i", E[pairs[:, 0]], E[pairs[:, 1]]).astype(np.float32)
    out = {
        "protocol": "verification",
        "description": PROTOCOL_DESCRIPTIONS["verification"],
        **verification_metrics(scores, same, fars=fars),
        "n_genuine_available": int(total),
        "genuine_subsampled": bool(total > len(gen)),
        "seed": int(seed),
    }
    out["_arrays"] = {"scores": scores, "same": same, "pairs": pairs}
    return out


def open_set_protocol(
    s: EmbeddingSet,
    gallery: str = "mean",
    known_fraction: float = 0.5,
    seed: int = 0,
    fpirs: Sequence[float] = (0.1, 0.01),
    threshold: float | None = None,
    cross_photo: bool = True,
    k: int = 5,
) -> dict:
    """Open-set identification with a seeded ``known_fraction`` of identities in the gallery.

    Known probes: with ``cross_photo`` (default) every image of a known identity with >= 2
    clean photos, scored against other photos only; otherwise the distorted images of known
    identities (gallery protocol). Unknown probes: every image (``cross_photo``) or every
    distorted image of the held-out identities. Reports :func:`~facelib.metrics.dir_at_fpir`;
    with ``threshold`` also the rates at it, and ``_arrays["y_pred_open"]`` with ``"unknown"``
    for probes below it (default: the threshold at the first FPIR).
    """
    mode = _check_mode(gallery)
    clean = s.clean_mask
    with_clean = sorted(set(s.identities[clean].tolist()))
    if len(with_clean) < 2:
        raise ValueError("open-set protocol needs at least 2 identities with clean images")
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
        raise ValueError(f"open-set needs known and unknown probes; got {len(known_p)} and {len(unknown_p)}")
    pidx = np.r_[known_p, unknown_p]
    ranked = _identify(s, gidx, s, pidx, mode, cross_photo=cross_photo, k=k)
    best = ranked["top_scores"][:, 0]
    names = ranked["names"]
    y_true = s.identities[pidx]
    y_pred = names[np.clip(ranked["top_ids"][:, 0], 0, None)]
    nk = len(known_p)
    known_correct = y_pred[:nk] == y_true[:nk]
    out = {
        "protocol": "open-set",
        "description": PROTOCOL_DESCRIPTIONS["open-set"],
        "gallery": mode,
        "cross_photo": bool(cross_photo),
        "n_gallery_identities": ranked["n_identities"],
        "n_gallery_images": ranked["n_images"],
        "n_heldout_identities": len(with_clean) - n_known,
        **dir_at_fpir(best[:nk], known_correct, best[nk:], fpirs=fpirs),
        "seed": int(seed),
    }
    if threshold is not None:
        t = float(threshold)
    elif fpirs:
        t = out[f"threshold_at_fpir_{rate_key(fpirs[0])}"]
    else:
        t = -np.inf
    if threshold is not None:
        out["threshold"] = float(threshold)
        out["dir_at_threshold"] = float(np.mean(known_correct & (best[:nk] >= t)))
        out["fpir_at_threshold"] = float(np.mean(best[nk:] >= t))
    y_open = np.where(best >= t, y_pred, "unknown")
    out["_arrays"] = {
        "probe_index": pidx,
        "known": np.r_[np.ones(nk, bool), np.zeros(len(unknown_p), bool)],
        "y_true": y_true,
        "y_pred": y_pred,
        "y_pred_open": y_open,
        "best_score": best,
        "open_threshold": float(t),
    }
    return out


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
) -> dict:
    """Run one protocol by name: closed, gallery, cross-photo, verification, open-set, or auto.

    ``auto`` uses :func:`detect_protocol` (closed when ``train`` is given and covers every
    val identity, else cross-photo) and records ``protocol_reason``. ``kw`` goes to the
    protocol function.
    """
    key = _ALIASES.get(name.lower().strip(), name.lower().strip())
    reason = None
    if key == "auto":
        key, reason = detect_protocol(
            train.identity_names if train is not None else None, probes.identity_names
        )
    if key == "closed":
        if train is None:
            raise ValueError("the closed protocol needs a train set for its gallery")
        out = closed_protocol(train, probes, gallery=gallery, **kw)
    elif key == "gallery":
        out = gallery_protocol(probes, gallery=gallery, **kw)
    elif key == "cross-photo":
        out = cross_photo_protocol(probes, gallery=gallery, **kw)
    elif key == "verification":
        out = verification_protocol(probes, **kw)
    elif key == "open-set":
        out = open_set_protocol(probes, gallery=gallery, **kw)
    else:
        raise ValueError(f"unknown protocol {name!r}; choose from {PROTOCOLS + ('auto',)}")
    if reason is not None:
        out["protocol_reason"] = reason
    return out


_PIXEL_CACHE: dict[tuple, np.ndarray] = {}


def pixel_baseline(
    name: str,
    probes: EmbeddingSet,
    train: EmbeddingSet | None = None,
    gallery: str = "mean",
    size: int = 32,
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    **kw: Any,
) -> dict:
    """The same protocol on pixel embeddings (``facelib.baselines.pixel_embeddings(paths, size)``).

    ``embed`` (paths -> [N, D]) replaces the pixel embedder, e.g. in tests.
    """
    label = "custom" if embed is not None else f"pixel{size}"
    if embed is None:
        from facelib.baselines import pixel_embeddings

        def embed(paths):  # noqa: E306
            key = (size, hash(tuple(paths)), len(paths))
            if key not in _PIXEL_CACHE:  # several protocols on one folder decode it once
                while len(_PIXEL_CACHE) >= 4:
                    _PIXEL_CACHE.pop(next(iter(_PIXEL_CACHE)))
                _PIXEL_CACHE[key] = pixel_embeddings(list(paths), size=size)
            return _PIXEL_CACHE[key]

    def pix(s: EmbeddingSet) -> EmbeddingSet:
        return replace(s, embeddings=l2_normalize(embed(s.paths.tolist())))

    out = run_protocol(name, pix(probes), pix(train) if train is not None else None, gallery=gallery, **kw)
    out["embedding"] = label
    return out


# --------------------------------------------------------------------------- output


def to_jsonable(obj: Any) -> Any:
    """A copy of a result with every ``_``-prefixed key dropped and numpy values made plain Python."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def format_result(r: dict) -> str:
    """One line per result, e.g. ``cross-photo (mean gallery, 250 identities): top1 0.452 ...``."""
    p = r.get("protocol", "?")
    if p == "verification":
        return (
            f"verification: AUC {r['roc_auc']:.3f}  EER {r['eer']:.3f}  "
            + "  ".join(f"TAR@FAR={k[11:]} {v:.3f}" for k, v in r.items() if k.startswith("tar_at_far_"))
            + f"  ({r['n_genuine']} genuine / {r['n_impostor']} impostor pairs)"
        )
    if p == "open-set":
        return f"open-set ({r['gallery']} gallery, {r['n_gallery_identities']} known identities): " + "  ".join(
            f"DIR@FPIR={k[12:]} {v:.3f}" for k, v in r.items() if k.startswith("dir_at_fpir_")
        )
    line = (
        f"{p} ({r['gallery']} gallery, {r['n_gallery']} {r['gallery_unit']}): top1 {r['top1']:.3f}  "
        f"top5 {r['top5']:.3f}  macro-F1 {r['macro_f1']:.3f}  over {r['n_probes']} probes"
    )
    if r.get("n_probes_without_gallery"):
        line += f" ({r['n_probes_without_gallery']} with no gallery entry)"
    return line
