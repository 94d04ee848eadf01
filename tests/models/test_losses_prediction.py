"""Prediction-layer KD losses and the hard-label loss, checked against explicit numpy loops."""

import math

import numpy as np
import pytest
import torch

from models import config
from models.errors import ConfigError, UnknownKeyError
from models.losses import PREDICTION_LOSSES, hard_loss, prediction_loss

STUDENT = np.array([[1.0, -0.5, 2.0], [0.3, 0.2, -1.0], [-2.0, 1.5, 0.0], [0.0, 0.0, 0.0]])
TEACHER = np.array([[2.0, 0.5, 1.0], [-0.3, 1.2, 0.4], [0.5, 0.5, -1.5], [3.0, -1.0, 0.0]])


def _softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


def test_registry_keys_match_config():
    assert set(PREDICTION_LOSSES.keys()) == set(config.PREDICTION_LOSSES)


@pytest.mark.parametrize("tau", [1.0, 2.5])
def test_soft_cross_entropy_value(tau):
    expected = 0.0
    for s_row, t_row in zip(STUDENT, TEACHER, strict=True):
        p_t = _softmax([v / tau for v in t_row])
        p_s = _softmax([v / tau for v in s_row])
        expected -= sum(pt * math.log(ps) for pt, ps in zip(p_t, p_s, strict=True))
    expected /= len(STUDENT)
    got = prediction_loss("ce", _t(STUDENT), _t(TEACHER), temperature=tau)
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_kl_value(tau):
    expected = 0.0
    for s_row, t_row in zip(STUDENT, TEACHER, strict=True):
        p_t = _softmax([v / tau for v in t_row])
        p_s = _softmax([v / tau for v in s_row])
        expected += sum(pt * (math.log(pt) - math.log(ps)) for pt, ps in zip(p_t, p_s, strict=True))
    expected /= len(STUDENT)
    got = prediction_loss("kl", _t(STUDENT), _t(TEACHER), temperature=tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kl_is_cross_entropy_minus_teacher_entropy():
    tau = 2.0
    entropy = np.mean([-sum(p * math.log(p) for p in _softmax([v / tau for v in row])) for row in TEACHER])
    ce = prediction_loss("ce", _t(STUDENT), _t(TEACHER), temperature=tau).item()
    kl = prediction_loss("kl", _t(STUDENT), _t(TEACHER), temperature=tau).item()
    assert kl == pytest.approx(ce - entropy, rel=1e-5)


def test_mse_on_classification_logits():
    tau = 2.0
    expected = sum((s / tau - t / tau) ** 2 for s, t in zip(STUDENT.ravel(), TEACHER.ravel(), strict=True))
    expected /= STUDENT.size
    assert prediction_loss("mse", _t(STUDENT), _t(TEACHER), temperature=tau).item() == pytest.approx(expected)


@pytest.mark.parametrize("student_shape", [(4,), (4, 1)])
@pytest.mark.parametrize("teacher_shape", [(4,), (4, 1)])
def test_mse_regression_shapes(student_shape, teacher_shape):
    s, t = [0.5, 1.0, -2.0, 3.0], [1.0, 1.0, 0.0, 2.5]
    expected = sum((a - b) ** 2 for a, b in zip(s, t, strict=True)) / 4
    got = prediction_loss(
        "mse", torch.tensor(s).reshape(student_shape), torch.tensor(t).reshape(teacher_shape)
    )
    assert got.item() == pytest.approx(expected)


@pytest.mark.parametrize("kind", ["ce", "mse", "kl"])
def test_t2_scaling(kind):
    plain = prediction_loss(kind, _t(STUDENT), _t(TEACHER), temperature=3.0)
    scaled = prediction_loss(kind, _t(STUDENT), _t(TEACHER), temperature=3.0, scale_by_t2=True)
    assert scaled.item() == pytest.approx(9.0 * plain.item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["ce", "kl"])
def test_distribution_losses_refuse_single_output(kind):
    with pytest.raises(ConfigError, match="identically zero"):
        prediction_loss(kind, torch.randn(4, 1), torch.randn(4, 1))


def test_bad_inputs():
    with pytest.raises(UnknownKeyError, match="ce, kl, mse"):
        prediction_loss("hinge", _t(STUDENT), _t(TEACHER))
    with pytest.raises(ConfigError, match="temperature"):
        prediction_loss("ce", _t(STUDENT), _t(TEACHER), temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        prediction_loss("ce", _t(STUDENT), _t(TEACHER[:, :2]))


def test_gradient_reaches_student_only():
    student = _t(STUDENT).requires_grad_()
    teacher = _t(TEACHER).requires_grad_()
    prediction_loss("ce", student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_hard_loss_classification_ids():
    labels = [2, 0, 1, 1]
    expected = -np.mean([math.log(_softmax(list(row))[y]) for row, y in zip(STUDENT, labels, strict=True)])
    got = hard_loss(_t(STUDENT), torch.tensor(labels), "classification")
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_hard_loss_soft_labels_for_mixup():
    lam = 0.3
    y_a, y_b = np.eye(3)[[2, 0, 1, 1]], np.eye(3)[[0, 0, 2, 1]]
    soft = lam * y_a + (1 - lam) * y_b
    expected = -np.mean(
        [
            sum(q * math.log(p) for q, p in zip(target, _softmax(list(row)), strict=True))
            for row, target in zip(STUDENT, soft, strict=True)
        ]
    )
    got = hard_loss(_t(STUDENT), _t(soft), "classification")
    assert got.item() == pytest.approx(expected, rel=1e-6)
    one_hot = hard_loss(_t(STUDENT), _t(y_a), "classification")
    ids = hard_loss(_t(STUDENT), torch.tensor([2, 0, 1, 1]), "classification")
    assert one_hot.item() == pytest.approx(ids.item(), rel=1e-6)


def test_hard_loss_regression():
    pred, gold = [0.5, 1.0, -2.0], [0.25, 1.5, -1.0]
    expected = sum((p - g) ** 2 for p, g in zip(pred, gold, strict=True)) / 3
    assert hard_loss(torch.tensor(pred)[:, None], torch.tensor(gold), "regression").item() == pytest.approx(
        expected
    )
    assert hard_loss(torch.tensor(pred), torch.tensor(gold), "regression").item() == pytest.approx(expected)


def test_hard_loss_bad_inputs():
    with pytest.raises(ValueError, match="floating point"):
        hard_loss(torch.randn(3, 1), torch.tensor([1, 2, 3]), "regression")
    with pytest.raises(ValueError, match="one output"):
        hard_loss(torch.randn(3, 2), torch.randn(3), "regression")
    with pytest.raises(ValueError, match="C >= 2"):
        hard_loss(torch.randn(3, 1), torch.tensor([0, 0, 0]), "classification")
    with pytest.raises(ValueError, match="soft labels"):
        hard_loss(torch.randn(3, 4), torch.rand(3, 2), "classification")
    with pytest.raises(ConfigError, match="task_kind"):
        hard_loss(torch.randn(3, 2), torch.tensor([0, 1, 0]), "ranking")
