from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facelib.config import DISTANCES
from facelib.training.distances import DISTANCE_TABLE, check_distance, pairwise_distances


def test_pairwise_euclidean_and_cosine():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    d = pairwise_distances(x)
    want = torch.tensor([[0.0, 5.0, 1.0], [5.0, 0.0, math.sqrt(18)], [1.0, math.sqrt(18), 0.0]])
    torch.testing.assert_close(d, want, atol=1e-5, rtol=0)
    torch.manual_seed(0)
    y = F.normalize(torch.randn(20, 8), dim=1)
    torch.testing.assert_close(pairwise_distances(y), torch.cdist(y, y), atol=1e-5, rtol=0)
    c = pairwise_distances(y, "cosine")
    torch.testing.assert_close(c, 1 - y @ y.T - torch.diag(torch.diag(1 - y @ y.T)), atol=1e-6, rtol=0)
    assert torch.all(c.diag() == 0)
    with pytest.raises(ValueError):
        pairwise_distances(y, "manhattan")



def test_pairwise_distances_under_autocast_and_half_input():
    torch.manual_seed(0)
    x = F.normalize(torch.randn(16, 32), dim=1)
    ref = pairwise_distances(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = pairwise_distances(x)
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, ref)
    d16 = pairwise_distances(x.bfloat16())
    assert d16.dtype == torch.float32
    torch.testing.assert_close(d16, ref, atol=2e-2, rtol=0)


def test_the_table_holds_every_configured_distance():
    assert tuple(DISTANCE_TABLE) == DISTANCES
    for name in DISTANCES:
        check_distance(name)
    with pytest.raises(ValueError, match="euclidean, cosine"):
        check_distance("manhattan")
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        pairwise_distances(torch.zeros(2, 3, 4))


@pytest.mark.parametrize("distance", DISTANCES)
def test_zero_distances_have_finite_gradients(distance):
    base = F.normalize(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    x = torch.cat([base, base[:1]]).requires_grad_(True)  # row 3 duplicates row 0
    d = pairwise_distances(x, distance)
    assert d[0, 3] == 0 and torch.all(d.diag() == 0)
    d.sum().backward()
    assert torch.all(torch.isfinite(x.grad)) and x.grad.abs().sum() > 0
