import math

import pytest
import torch
import torch.nn.functional as F

from distill.losses import DistillationLoss, hidden_mse
from edgedistill.recipe import LossConfig


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), torch.tensor([0, 1, 2, 1, 0])


def test_ce_only(logits):
    s, _, y = logits
    total, parts = DistillationLoss(LossConfig(ce=1, kl=0))(s, y)
    assert math.isclose(float(total), float(F.cross_entropy(s, y)), rel_tol=1e-6) and set(parts) == {"ce"}


def test_kl_is_scaled_by_t_squared(logits):
    s, t, y = logits
    T = 3.0
    total, parts = DistillationLoss(LossConfig(ce=0, kl=1, temperature=T))(s, y, t)
    p_t = F.softmax(t / T, -1)
    ref = (p_t * (p_t.log() - F.log_softmax(s / T, -1))).sum(-1).mean() * T * T
    assert math.isclose(float(total), float(ref), rel_tol=1e-5)


def test_cosine_term(logits):
    s, t, y = logits
    total, _ = DistillationLoss(LossConfig(ce=0, kl=0, cosine=1))(s, y, t)
    ref = sum(1 - float(torch.dot(a, b) / (a.norm() * b.norm())) for a, b in zip(s, t)) / len(s)
    assert math.isclose(float(total), ref, rel_tol=1e-5)


def test_reference_preset_is_the_course_projects_mean_of_three(logits):
    s, t, y = logits
    total, parts = DistillationLoss(LossConfig(preset="reference", hidden=5, temperature=7))(s, y, t)
    assert set(parts) == {"ce", "kl", "cosine"}
    kl1 = F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean")
    ref = (F.cross_entropy(s, y) + kl1 + (1 - F.cosine_similarity(s, t)).mean()) / 3
    assert math.isclose(float(total), float(ref), rel_tol=1e-5)


def test_hidden_mse_maps_layers_and_ignores_padding():
    g = torch.Generator().manual_seed(1)
    teacher_h = tuple(torch.randn(2, 4, 8, generator=g) for _ in range(5))   # embeddings + 4 layers
    student_h = tuple(torch.randn(2, 4, 8, generator=g) for _ in range(3))   # embeddings + 2 layers
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    got = hidden_mse(student_h, teacher_h, [1, 3], mask)
    ref = []
    for i, t in enumerate([1, 3]):
        d = (student_h[i + 1] - teacher_h[t + 1]).pow(2).mean(-1)
        ref.append((d * mask).sum() / mask.sum())
    assert torch.allclose(got, torch.stack(ref).mean(), rtol=1e-5)
    # a student equal to its mapped teacher layers has zero loss
    same = (teacher_h[0], teacher_h[2], teacher_h[4])
    assert float(hidden_mse(same, teacher_h, [1, 3], mask)) == 0.0


def test_weights_combine_and_gradients_flow(logits):
    s, t, y = logits
    s = s.clone().requires_grad_()
    loss = DistillationLoss(LossConfig(ce=0.5, kl=2.0, cosine=1.0, temperature=2))
    total, parts = loss(s, y, t)
    assert math.isclose(float(total), 0.5 * parts["ce"] + 2.0 * parts["kl"] + parts["cosine"], rel_tol=1e-5)
    total.backward()
    assert s.grad is not None and t.grad is None


def test_logits_mse_is_the_mean_squared_distance_to_the_teachers_logits(logits):
    s, t, y = logits
    loss = DistillationLoss(LossConfig(ce=0, kl=0), logits_mse=0.5)
    assert loss.needs_teacher
    total, parts = loss(s, y, t)
    assert set(parts) == {"logits_mse"}
    assert math.isclose(float(total), 0.5 * float(((s - t) ** 2).mean()), rel_tol=1e-6)
    # logits that differ by a constant have the same softmax (kl 0) but not the same scores
    _, parts = DistillationLoss(LossConfig(ce=0, kl=1), logits_mse=1.0)(t + 1.0, y, t)
    assert parts["kl"] == pytest.approx(0.0, abs=1e-6) and parts["logits_mse"] == pytest.approx(1.0)
    assert "logits_mse" not in DistillationLoss(LossConfig(ce=0, kl=1))(s, y, t)[1]
