"""Score `facelib embed` output independently of facelib: cross-photo top-1 with numpy alone.

    facelib embed --checkpoint m/tb_model.pth --data ../shared/data/facecom_task_b/val --out val.npz
    python benchmarks/score_npz.py val.npz [more.npz ...]

Reads only the .npz arrays (``embeddings`` [N, D], ``identities``, ``photos``, ``distortions`` [N]) and does
not import facelib: a check of the protocol code as well as of the model. Cross-photo protocol, gallery of all
images: every image (clean or distorted) of an identity with two or more photos is a probe; the gallery is
every clean image of the folder (single-photo identities included, as distractors), less the probe's own photo;
top-1 is right when the most similar gallery image (cosine) belongs to the probe's identity. The 95% interval is a
bootstrap over probe identities (2,000 resamples, seed 0).
"""

from __future__ import annotations

import argparse

import numpy as np


def cross_photo_top1(emb: np.ndarray, ids: np.ndarray, photos: np.ndarray, kinds: np.ndarray) -> dict:
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    n_photos = {i: len(set(photos[ids == i])) for i in np.unique(ids)}
    probes = np.flatnonzero([n_photos[i] >= 2 for i in ids])
    gallery = np.flatnonzero(kinds == "")  # the clean images
    correct = np.zeros(len(probes), bool)
    for start in range(0, len(probes), 512):
        q = probes[start:start + 512]
        sim = emb[q] @ emb[gallery].T
        sim[photos[q][:, None] == photos[gallery][None, :]] = -np.inf  # never the probe's own photo
        correct[start:start + 512] = ids[gallery][sim.argmax(axis=1)] == ids[q]
    per_kind = {str(k or "clean"): float(correct[kinds[probes] == k].mean()) for k in np.unique(kinds[probes])}
    pid = ids[probes]
    uniq = np.unique(pid)
    rng = np.random.default_rng(0)
    by_id = {u: correct[pid == u] for u in uniq}
    boot = []
    for _ in range(2000):
        pick = rng.choice(uniq, len(uniq))
        hits = np.concatenate([by_id[u] for u in pick])
        boot.append(hits.mean())
    return dict(top1=float(correct.mean()), ci=(float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))),
                n_probes=int(len(probes)), n_identities=int(len(uniq)), per_kind=per_kind)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("npz", nargs="+")
    args = ap.parse_args(argv)
    for path in args.npz:
        with np.load(path, allow_pickle=False) as z:
            r = cross_photo_top1(z["embeddings"].astype(np.float64), z["identities"].astype(str),
                                 z["photos"].astype(str), z["distortions"].astype(str))
        print(f"{path}: cross-photo top-1 (all-images gallery) {r['top1']:.4f} "
              f"(95% interval {r['ci'][0]:.3f}-{r['ci'][1]:.3f}; {r['n_probes']} probes of {r['n_identities']} "
              "identities)")
        print("  per probe kind: " + "  ".join(f"{k} {v:.3f}" for k, v in r["per_kind"].items()))


if __name__ == "__main__":
    main()
