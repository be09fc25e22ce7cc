from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facelib.config import CLASS_MARGINS, LOSSES, TRIPLET_MARGIN, TrainConfig
from facelib.training.distances import pairwise_distances
from facelib.training.losses import (
    LOSS_TABLE,
    MarginSoftmaxLoss,
    MetricLoss,
    MinedTripletLoss,
    NoLoss,
    TripletLoss,
    build_loss,
    embedding_spread,
    get_loss,
    register_loss,
)
from facelib.training.miners import batch_all, get_miner


def _idx(*xs):
    return tuple(torch.tensor(x, dtype=torch.long) for x in xs)


def test_known_answer_2d():
    # anchor at origin; positive at (1, 0) -> d_ap = 1; negatives at (0, 1.1) and (0, 3)
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.1], [0.0, 3.0]])
    a, p, n = _idx([0, 0], [1, 1], [2, 3])
    # per-triplet: relu(1 - 1.1 + 0.2) = 0.1, relu(1 - 3 + 0.2) = 0
    loss, stats = TripletLoss(margin=0.2, reduction="mean")(x, a, p, n)
    assert loss.item() == pytest.approx(0.05, abs=1e-6)
    loss, stats = TripletLoss(margin=0.2)(x, a, p, n)  # mean_active
    assert loss.item() == pytest.approx(0.1, abs=1e-6)
    assert stats["active_fraction"] == pytest.approx(0.5)
    assert stats["pos_dist"] == pytest.approx(1.0, abs=1e-6)
    assert stats["neg_dist"] == pytest.approx(2.05, abs=1e-6)
    assert stats["n_triplets"] == 2
    soft, _ = TripletLoss(soft=True, reduction="mean")(x, a, p, n)
    want = (F.softplus(torch.tensor(-0.1)) + F.softplus(torch.tensor(-2.0))) / 2
    assert soft.item() == pytest.approx(want.item(), abs=1e-6)


def test_matches_torch_triplet_margin_loss():
    torch.manual_seed(1)
    x = F.normalize(torch.randn(32, 16), dim=1)
    a = torch.randint(0, 32, (200,))
    p = torch.randint(0, 32, (200,))
    n = torch.randint(0, 32, (200,))
    keep = (a != p) & (a != n)
    a, p, n = a[keep], p[keep], n[keep]
    ours, _ = TripletLoss(margin=0.3, reduction="mean")(x, a, p, n)
    # TripletMarginLoss uses ||x - y + eps|| with eps=1e-6: differences ~1e-6 per distance
    ref = torch.nn.TripletMarginLoss(margin=0.3)(x[a], x[p], x[n])
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)
    # gradients agree too
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    TripletLoss(margin=0.3, reduction="mean")(x1, a, p, n)[0].backward()
    torch.nn.TripletMarginLoss(margin=0.3)(x2[a], x2[p], x2[n]).backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-4, rtol=0)


def test_cosine_distance_loss():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    a, p, n = _idx([0], [1], [2])  # d_ap = 1, d_an = 2
    loss, stats = TripletLoss(margin=1.5, distance="cosine")(x, a, p, n)
    assert loss.item() == pytest.approx(0.5, abs=1e-6)
    assert stats["neg_dist"] == pytest.approx(2.0, abs=1e-6)


def test_empty_triplets():
    x = torch.randn(4, 3, requires_grad=True)
    e = torch.empty(0, dtype=torch.long)
    for loss_fn in (TripletLoss(), TripletLoss(reduction="mean"), TripletLoss(soft=True)):
        loss, stats = loss_fn(x, e, e, e)
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
        assert torch.all(x.grad == 0)
        assert stats == {"active_fraction": 0.0, "pos_dist": 0.0, "neg_dist": 0.0, "n_triplets": 0}


def test_no_active_triplet_mean_active_is_zero_with_grad():
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]], requires_grad=True)
    loss, stats = TripletLoss()(x, *_idx([0], [1], [2]))
    assert loss.item() == 0.0 and stats["active_fraction"] == 0.0
    loss.backward()
    assert torch.all(x.grad == 0)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("soft", [False, True])
def test_gradients_finite_with_duplicates(distance, soft):
    base = F.normalize(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    x = torch.cat([base, base, base[:1]]).requires_grad_(True)  # exact duplicates: distance 0
    # zero-distance positives, zero-distance negatives, and both at once
    a, p, n = _idx([0, 0, 1, 0, 6, 0], [3, 6, 4, 6, 0, 2], [1, 2, 0, 3, 5, 3])
    loss, stats = TripletLoss(distance=distance, soft=soft, margin=2.5)(x, a, p, n)
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(x.grad))
    assert x.grad.abs().sum() > 0
    assert all(math.isfinite(v) for v in stats.values())
    assert pairwise_distances(x.detach(), distance)[0, 3] == 0


def test_bad_arguments():
    with pytest.raises(ValueError):
        TripletLoss(reduction="sum")
    with pytest.raises(ValueError):
        TripletLoss(distance="l1")
    with pytest.raises(ValueError):
        TripletLoss()(torch.randn(3, 2), *_idx([0], [1, 2], [2]))


def test_embedding_spread():
    torch.manual_seed(0)
    same = F.normalize(torch.randn(1, 64), dim=1).repeat(50, 1)
    assert embedding_spread(same) == pytest.approx(0.0, abs=1e-5)
    spread = embedding_spread(F.normalize(torch.randn(2000, 64), dim=1))
    assert 0.95 < spread <= 1.0
    x = F.normalize(torch.randn(10, 8), dim=1)
    assert embedding_spread(x) == pytest.approx(math.sqrt(1 - x.mean(0).norm().item() ** 2), abs=1e-5)
    assert embedding_spread(x[:1]) == 0.0


@pytest.mark.parametrize("kind", ["arcface", "cosface"])
def test_margin_softmax_known_answer(kind: str):
    crit = MarginSoftmaxLoss(3, 2, kind=kind, scale=10.0)
    with torch.no_grad():
        crit.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    x = F.normalize(torch.tensor([[1.0, 1.0]]), dim=1)  # 45 degrees from classes 0 and 1, 135 from class 2
    loss, stats = crit(x, torch.tensor([0]))
    c = math.cos(math.pi / 4)
    target = math.cos(math.pi / 4 + 0.5) if kind == "arcface" else c - 0.35
    logits = torch.tensor([[10 * target, 10 * c, -10 * c]])
    assert loss.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0])).item(), rel=1e-5)
    assert crit.margin == CLASS_MARGINS[kind] == (0.5 if kind == "arcface" else 0.35)
    assert stats["accuracy"].item() in (0.0, 1.0)  # a tie between classes 0 and 1


def test_arcface_margin_past_pi_stays_monotone():
    crit = MarginSoftmaxLoss(2, 3, kind="arcface", margin=0.5, scale=1.0)
    with torch.no_grad():
        crit.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))  # class 1 orthogonal to the plane
    angles = torch.linspace(2.7, 3.1, 7)  # theta + m > pi for all of these
    x = torch.stack([torch.cos(angles), torch.sin(angles), torch.zeros(7)], dim=1)
    losses = [crit(x[i:i + 1], torch.tensor([0]))[0].item() for i in range(7)]
    assert all(a < b for a, b in zip(losses, losses[1:]))  # the farther from its class, the larger the loss


def test_margin_softmax_learns_separable_points():
    torch.manual_seed(0)
    crit = MarginSoftmaxLoss(4, 8, kind="arcface", scale=16.0)
    centers = F.normalize(torch.randn(4, 8), dim=1)
    y = torch.arange(4).repeat(16)
    x = F.normalize(centers[y] + 0.1 * torch.randn(64, 8), dim=1)
    opt = torch.optim.SGD(crit.parameters(), lr=0.5)
    first = None
    for _ in range(60):
        loss, stats = crit(x, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first and stats["accuracy"].item() == 1.0


def test_margin_softmax_rejects_unknown_kind():
    with pytest.raises(ValueError, match="arcface"):
        MarginSoftmaxLoss(3, 2, kind="sphereface")


def test_reduction_none_gives_the_per_triplet_hinge():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.1], [0.0, 3.0]], requires_grad=True)
    a, p, n = _idx([0, 0], [1, 1], [2, 3])
    per, stats = TripletLoss(margin=0.2, reduction="none")(x, a, p, n)
    assert per.shape == (2,)
    torch.testing.assert_close(per.detach(), torch.tensor([0.1, 0.0]), atol=1e-6, rtol=0)
    assert stats["active_fraction"] == pytest.approx(0.5)
    mean_active, _ = TripletLoss(margin=0.2)(x, a, p, n)
    assert mean_active.item() == pytest.approx(per.sum().item() / (per > 0).sum().item())
    per.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    empty, _ = TripletLoss(reduction="none")(x, *_idx([], [], []))
    assert empty.shape == (0,) and empty.requires_grad


# ----------------------------------------------------------------------------- the registry and the one call

def _cfg(loss: str) -> TrainConfig:
    return TrainConfig(loss=loss, embedding_dim=4, teacher="dlib" if loss == "none" else None)


def test_the_registry_keys_are_the_config_choices():
    from facelib.config import choices

    assert tuple(LOSS_TABLE) == tuple(LOSSES) == ("triplet", "arcface", "cosface", "none")
    assert choices(TrainConfig, "loss") is LOSSES  # what --loss offers, grown by register_loss
    assert get_loss("triplet") is MinedTripletLoss and get_loss("none") is NoLoss
    assert get_loss("arcface") is get_loss("cosface") is MarginSoftmaxLoss


@pytest.mark.parametrize("name", list(LOSS_TABLE))
def test_every_registered_loss_takes_the_one_call(name):
    torch.manual_seed(0)
    x = F.normalize(torch.randn(8, 4), dim=1).requires_grad_(True)
    y = torch.arange(4).repeat_interleave(2)
    given = _idx([0, 2], [1, 3], [4, 6])
    loss = build_loss(_cfg(name), 4, log=lambda s: None)
    assert isinstance(loss, MetricLoss)
    for indices in (None, given):
        value, stats = loss(x, y, indices)
        assert value.dim() == 0 and value.requires_grad and torch.isfinite(value)
        assert all(v.dim() == 0 and not v.requires_grad for v in stats.values() if isinstance(v, torch.Tensor))
        assert {k for k, _ in loss.log_stats} <= set(stats)
    if not loss.mines:  # a loss that scores no triplets ignores them
        assert loss(x, y)[0].item() == loss(x, y, given)[0].item()
    assert (loss(x, y)[0].item() != 0) == loss.trains


def test_the_triplet_loss_mines_unless_given_its_triplets():
    torch.manual_seed(1)
    x, y = F.normalize(torch.randn(12, 6), dim=1), torch.arange(3).repeat_interleave(4)
    loss = MinedTripletLoss("batch_all", margin=0.3)
    mined, stats = loss(x, y)
    ref, ref_stats = TripletLoss(0.3)(x, *batch_all(x, y))
    assert mined.item() == ref.item() and stats["n_triplets"] == ref_stats["n_triplets"] == 3 * 4 * 3 * 8
    given = _idx([0, 4], [1, 5], [8, 9])
    assert loss(x, y, given)[0].item() == TripletLoss(0.3)(x, *given)[0].item() != mined.item()
    random = MinedTripletLoss("random")  # its draws come from its generator, when the trainer sets one
    random.generator = torch.Generator().manual_seed(5)
    want = TripletLoss()(x, *get_miner("random")(x, y, generator=torch.Generator().manual_seed(5)))[0]
    assert random(x, y)[0].item() == want.item()


def test_the_margins_are_the_configs():
    cfg = TrainConfig()
    assert cfg.margin == TRIPLET_MARGIN == TripletLoss().margin == MinedTripletLoss().triplet.margin
    assert build_loss(cfg.replace(margin=0.7), 2, log=print).triplet.margin == 0.7
    for kind, margin in CLASS_MARGINS.items():
        lines: list[str] = []
        assert build_loss(_cfg(kind), 3, log=lines.append).margin == margin
        assert f"margin {margin}," in lines[0]
        assert build_loss(_cfg(kind).replace(class_margin=0.1), 3, log=print).margin == 0.1


def test_register_loss_refuses_a_taken_name_or_a_non_loss():
    with pytest.raises(ValueError, match="registered already"):
        register_loss("triplet")(NoLoss)
    with pytest.raises(TypeError, match="MetricLoss"):
        register_loss("plain")(torch.nn.Module)
    with pytest.raises(ValueError, match="triplet, arcface"):
        get_loss("sphereface")
    assert tuple(LOSS_TABLE) == tuple(LOSSES)  # nothing was added
