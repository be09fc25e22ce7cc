"""The distillation term, and training with a teacher (a tiny fixed network stands in for dlib)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelib.config import DISTILL_FORMS, TEACHER_WEIGHT_DECAY, TrainConfig
from facelib.errors import ConfigError, DataError
from facelib.training import teachers as T
from facelib.training.distill import DistillLoss
from facelib.training.trainer import Trainer, last_checkpoint_path
from tests.training.test_teachers import TinyTeacher


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=1)


def distill_loss(form: str, student_dim: int, teacher_dim: int, people: int = 4) -> DistillLoss:
    """A DistillLoss; a form with prototypes gets ``people`` random ones, as the trainer sets them."""
    loss = DistillLoss(form, student_dim, teacher_dim)
    if "prototypes" in form:
        loss.set_prototypes(unit(people, teacher_dim, seed=11))
    return loss


def test_projection_known_answers():
    t = unit(5, 3)
    loss = DistillLoss("projection", 3, 3)
    with torch.no_grad():
        loss.proj.weight.copy_(torch.eye(3))
    value, stats = loss(t * 2.0, t)  # same directions: 1 - cos = 0
    assert value.item() == pytest.approx(0.0, abs=1e-6) and stats["teacher_cos"].item() == pytest.approx(1.0)
    value, _ = loss(-t, t)  # opposite: 1 - (-1) = 2
    assert value.item() == pytest.approx(2.0, abs=1e-6)


def test_similarity_form_is_dimension_free_and_rotation_invariant():
    t = unit(6, 4)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))
    student = torch.cat([t, torch.zeros(6, 4)], dim=1) @ q  # 8-d, the teacher's geometry rotated
    value, stats = DistillLoss("similarity", 8, 4)(student, t)
    assert value.item() == pytest.approx(0.0, abs=1e-6) and stats["teacher_cos"].item() == pytest.approx(1.0)
    other, _ = DistillLoss("similarity", 8, 4)(unit(6, 8, seed=5), t)
    assert other.item() > 0.05


def test_neighbours_form_known_answer_and_rotation_invariance():
    """KL(teacher || student) of each photo's softmax over the other photos (cosine / 0.1), by hand."""
    from facelib.training.distill import NEIGHBOUR_TEMPERATURE as tau

    t, s = unit(4, 3, seed=1), unit(4, 6, seed=2)
    value, stats = DistillLoss("neighbours", 6, 3)(s, t)
    st, ss = (t @ t.T).double().numpy(), (s @ s.T).double().numpy()
    expected = 0.0
    for i in range(4):
        others = [j for j in range(4) if j != i]
        pt = np.exp(st[i, others] / tau) / np.exp(st[i, others] / tau).sum()
        ps = np.exp(ss[i, others] / tau) / np.exp(ss[i, others] / tau).sum()
        expected += (pt * np.log(pt / ps)).sum() / 4
    assert value.item() == pytest.approx(expected, rel=1e-4) and value.item() > 0.01
    q, _ = torch.linalg.qr(torch.randn(7, 7, generator=torch.Generator().manual_seed(3)))
    rotated = torch.cat([t, torch.zeros(4, 4)], dim=1) @ q  # 7-d, the teacher's geometry
    same, stats = DistillLoss("neighbours", 7, 3)(rotated, t)
    assert same.item() == pytest.approx(0.0, abs=1e-5) and stats["teacher_cos"].item() == pytest.approx(1.0)


def test_a_joined_form_is_the_sum_of_its_parts():
    s, t = unit(6, 5, seed=4), unit(6, 3, seed=6)
    both, proj = DistillLoss("projection+similarity", 5, 3), DistillLoss("projection", 5, 3)
    proj.load_state_dict(both.state_dict())
    value, stats = both(s, t)
    p_value, p_stats = proj(s, t)
    sim_value, _ = DistillLoss("similarity", 5, 3)(s, t)
    assert value.item() == pytest.approx(p_value.item() + sim_value.item(), rel=1e-6)
    assert stats["teacher_cos"].item() == pytest.approx(p_stats["teacher_cos"].item())


def test_prototypes_form_known_answer():
    """KL(teacher || student) of each photo's softmax over the people's prototypes (cosine / 0.05), by hand;
    zero where the mapped student points where the teacher does, whatever its length."""
    from facelib.training.distill import PROTOTYPE_TEMPERATURE as tau

    t, s, protos = unit(5, 3, seed=1), unit(5, 4, seed=2), unit(6, 3, seed=3)
    loss = DistillLoss("prototypes", 4, 3)
    loss.set_prototypes(protos * 3.0)  # normalised when set
    with torch.no_grad():
        loss.proj.weight.copy_(torch.eye(3, 4))
    same, stats = loss(torch.cat([t, torch.zeros(5, 1)], 1) * 2.0, t)
    assert same.item() == pytest.approx(0.0, abs=1e-5) and stats["teacher_cos"].item() == pytest.approx(1.0)
    value, _ = loss(s, t)
    z = F.normalize(s[:, :3], dim=1).double().numpy()
    lt, ls = (t.double().numpy() @ protos.double().numpy().T) / tau, (z @ protos.double().numpy().T) / tau
    pt = np.exp(lt) / np.exp(lt).sum(1, keepdims=True)
    ps = np.exp(ls) / np.exp(ls).sum(1, keepdims=True)
    assert value.item() == pytest.approx((pt * np.log(pt / ps)).sum(1).mean(), rel=1e-4) and value.item() > 0.1
    with pytest.raises(RuntimeError, match="set_prototypes"):
        DistillLoss("prototypes", 4, 3)(s, t)


def test_prototypes_are_each_persons_mean_teacher_row():
    """Each person's photos counted once (copies share their clean photo's row), rows of -1 left out, people
    without any row left out, the means normalised."""
    from facelib.training.setup import teacher_prototypes

    table = unit(4, 3, seed=7)
    rows = torch.tensor([0, 0, 1, -1, 2, 2, 3, -1])  # person 0: photos 0 (and a copy), 1; person 1: none
    labels = [0, 0, 0, 1, 2, 2, 3, 3]  # person 2: photo 2 and a copy; person 3: photo 3
    protos = teacher_prototypes(rows, labels, table)
    expected = F.normalize(torch.stack([table[0] + table[1], table[2], table[3]]), dim=1)
    torch.testing.assert_close(protos, expected)


@pytest.mark.parametrize("form", DISTILL_FORMS)
def test_masked_rows_do_not_count_and_descent_lowers_the_loss(form):
    s, t = unit(8, 5, seed=2).requires_grad_(), unit(8, 3, seed=3)
    mask = torch.tensor([True] * 6 + [False] * 2)
    loss = distill_loss(form, 5, 3)
    a, _ = loss(s, t, mask)
    b, _ = loss(torch.cat([s[:6], unit(2, 5, seed=9)]), t, mask)  # change only the masked rows
    assert a.item() == pytest.approx(b.item(), abs=1e-6)
    x = unit(8, 5, seed=2).requires_grad_()
    opt = torch.optim.SGD([x, *loss.parameters()], lr=0.5)
    first = None
    for _ in range(30):
        value, _ = loss(x, t, mask)
        first = value.item() if first is None else first
        opt.zero_grad()
        value.backward()
        opt.step()
    assert value.item() < 0.5 * first


@pytest.mark.parametrize("form", ["similarity", "neighbours"])
def test_too_few_rows_give_zero_with_a_graph(form):
    s = unit(1, 4).requires_grad_()
    value, _ = DistillLoss(form, 4, 3)(s, unit(1, 3))
    assert value.item() == 0.0 and value.requires_grad


def test_config_rules():
    with pytest.raises(ConfigError, match="give a teacher"):
        TrainConfig(loss="none")
    with pytest.raises(ConfigError, match="P x K"):
        TrainConfig(teacher="dlib", sampler="triplets", miner="random", batch_size=8)
    with pytest.raises(ConfigError, match="must name a teacher"):
        TrainConfig(teacher=" ")
    with pytest.raises(ConfigError):
        TrainConfig(teacher="dlib", distill="nope")
    assert TrainConfig(teacher="x.onnx").teacher == "x.onnx"


@pytest.fixture
def tiny_teacher():
    T.register_teacher("tiny-test")(TinyTeacher)
    yield "tiny-test"
    T.TEACHERS.pop("tiny-test", None)


def cfg(root: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(root), epochs=1, image_size=32, backbone="resnet18", pretrained=False, embedding_dim=16,
                p=4, k=4, steps_per_epoch=2, workers=0, out=str(out), progress=False, lr=1e-3,
                teacher_cache=str(out.parent / "cache"))
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("form", DISTILL_FORMS)
def test_distillation_alone_pulls_the_student_to_the_teacher(synth_root, tmp_path, tiny_teacher, form):
    from facelib.data.folders import load_image
    from facelib.models.transforms import build_transform

    torch.manual_seed(0)
    # the optimiser pinned (rate, warm-up, decay), so the 40 steps measure the form, not a default
    t = Trainer(cfg(synth_root / "train", tmp_path / "m.pth", loss="none", teacher=tiny_teacher, distill=form,
                    steps_per_epoch=40, lr=3e-3, warmup=0.0, weight_decay=1e-4, augment="none"), log=lambda s: None)
    # every training image, distorted copies included, has the target of its clean photo
    assert (t.teacher_rows >= 0).all()
    clean_rows = {s.photo: int(r) for s, r in zip(t.folder.samples, t.teacher_rows) if s.is_clean}
    assert all(int(r) == clean_rows[s.photo] for s, r in zip(t.folder.samples, t.teacher_rows))
    # the term on a fixed set of 32 clean photos, before and after training
    idx = [i for i, s in enumerate(t.folder.samples) if s.is_clean][:32]
    tf = build_transform(t.spec, train=False)
    x = torch.stack([tf(load_image(t.folder.paths[i])) for i in idx])
    target = t.teacher_table[t.teacher_rows[idx]]

    def fixed(model, train: bool) -> float:
        model.train(train)
        with torch.no_grad():
            return float(t.distill(model(x), target)[0])

    # the untrained network as it is trained (batch statistics; a fresh BatchNorm's running statistics would
    # score another network), on a copy so that its running statistics stay as they were; then as it is used
    before = fixed(copy.deepcopy(t.model), train=True)
    t.fit()
    after = fixed(t.model, train=False)
    assert after < 0.7 * before, (before, after)
    assert t.history[0]["distill"] > 0 and 0 < t.history[0]["teacher_cos"] <= 1


def test_triplet_plus_distillation_checkpoint_drops_the_projection_and_resumes(synth_root, tmp_path, tiny_teacher):
    lines: list[str] = []
    c = cfg(synth_root / "train", tmp_path / "m.pth", teacher=tiny_teacher, loss="triplet", distill_weight=0.5,
            epochs=2)
    t = Trainer(c, log=lines.append)
    t.fit()
    text = "\n".join(lines)
    assert "teacher tiny-v1" in text and "computed" in text and "+ 0.5 x distillation" in text
    # with a teacher, weight decay unset is TEACHER_WEIGHT_DECAY, and the log says so
    assert "weight decay 0.05 (the default with a teacher)" in text
    assert {g["weight_decay"] for g in t.optimizer.param_groups} == {TEACHER_WEIGHT_DECAY}
    best = torch.load(tmp_path / "m.pth", weights_only=True)
    assert not any("proj" in k for k in best["model"]) and "distill" not in best
    last = torch.load(last_checkpoint_path(tmp_path / "m.pth"), weights_only=True)
    assert set(last["distill"]) == {"proj.weight"} and last["distill"]["proj.weight"].shape == (6, 16)
    # the second run reuses the cache and resumes the projection with the rest
    lines.clear()
    r = Trainer(c.replace(epochs=3, resume=True, weight_decay=0.01), log=lines.append)
    assert any(" 0 computed" in line for line in lines)
    # the resumed optimiser takes the configured decay, not the one saved with its state
    assert {g["weight_decay"] for g in r.optimizer.param_groups} == {0.01}
    torch.testing.assert_close(r.distill.proj.weight.detach(), last["distill"]["proj.weight"])
    r.fit()
    assert len(r.history) == 3 and np.isfinite(r.history[-1]["distill"])


def test_unlabelled_photos_teach_through_the_teacher(synth_root, tmp_path, tiny_teacher):
    """--unlabelled: photos in any layout (a corrupt file and a text file counted and skipped), drawn clean or
    with a made distortion, U per batch, in the distillation term only."""
    from tests.conftest import write_image

    loose = tmp_path / "loose"
    for i in range(5):
        write_image(loose / ("a" if i % 2 else "b/c") / f"p{i}.png", seed=500 + i)
    (loose / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (loose / "notes.txt").write_text("not a photo")
    lines: list[str] = []
    c = cfg(synth_root / "train", tmp_path / "m.pth", teacher=tiny_teacher, unlabelled=[str(loose)],
            unlabelled_per_batch=3, clean_fraction=0.5)
    t = Trainer(c, log=lines.append)
    text = "\n".join(lines)
    assert "unlabelled: 5 photos in" in text and "skipped 2 files" in text
    assert len(t.unlabelled.images) == 5 * 8 and len(t.teacher_table) == int(t.teacher_rows.max()) + 1 + 5
    seen: list[torch.Tensor] = []
    original = t.distill.forward

    def spy(student, teacher, mask):
        seen.append(teacher.detach().clone())
        return original(student, teacher, mask)

    t.distill.forward = spy
    t.fit()
    # each step's term saw the P x K batch plus 3 unlabelled photos, whose targets are their own teacher rows
    assert [len(s) for s in seen] == [4 * 4 + 3] * 2
    own = t.teacher_table[-5:]
    for s in seen:
        assert all(bool((row == own).all(1).any()) for row in s[-3:])
    with pytest.raises(ConfigError, match="give a teacher"):
        TrainConfig(unlabelled=[str(loose)])
    with pytest.raises(DataError, match="unlabelled folder not found"):
        Trainer(c.replace(unlabelled=[str(tmp_path / "nope")]), log=lambda s: None)


def test_teacher_rows_are_centred_on_their_mean():
    """A teacher whose rows share one direction (dlib's: mean pairwise cosine 0.83) is centred: the rows lose the
    common part, stay unit vectors and keep who is whom (nearest-neighbour identity as before; on dlib's rows
    of FACECOM train + LFW: 0.939 raw, 0.936 centred, lab notes 10.2)."""
    from facelib.training.setup import centred

    g = np.random.default_rng(0)
    people = g.normal(size=(20, 16))
    ids = np.repeat(np.arange(20), 10)
    raw = 6.0 + people[ids] + 0.3 * g.normal(size=(200, 16))  # 20 people in a cone around (1, ..., 1)
    cone = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    off = ~np.eye(200, dtype=bool)
    assert (cone @ cone.T)[off].mean() > 0.8
    out = centred(cone, cone.mean(0))
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert abs((out @ out.T)[off].mean()) < 0.05

    def nn_identity(x):
        s = x @ x.T - 9 * np.eye(200)
        return (ids[s.argmax(1)] == ids).mean()

    assert nn_identity(out) >= nn_identity(cone) - 0.02 and nn_identity(out) > 0.9
