"""EmbeddingSet: validation, subset and the .npz round trip."""

from __future__ import annotations

import numpy as np
import pytest

from facelib.evaluation.embedding_set import EmbeddingSet
from tests.evaluation.test_protocols import random_set


def test_npz_round_trip(tmp_path):
    s = random_set(n_ids=4, seed=9)
    out = s.to_npz(tmp_path / "emb.npz")
    assert out.exists() and not list(tmp_path.glob(".*tmp*"))
    t = EmbeddingSet.from_npz(out)
    np.testing.assert_array_equal(t.embeddings, s.embeddings)
    for k in ("identities", "photos", "distortions", "paths"):
        assert getattr(t, k).tolist() == getattr(s, k).tolist()
    s.to_npz(tmp_path / "plain")  # exact name kept, no ".npz" appended
    assert (tmp_path / "plain").exists()
    assert len(EmbeddingSet.from_npz(tmp_path / "plain")) == len(s)
    sub = s.subset(s.clean_mask)
    assert len(sub) == int(s.clean_mask.sum()) and set(sub.distortions) == {""}
    with pytest.raises(ValueError):
        EmbeddingSet(np.zeros((2, 3)), ["a"], ["a/x", "a/y"], ["", ""], ["p", "q"])
