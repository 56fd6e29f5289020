"""The distillation loss as one module: its weights and temperature are its only state.

total = ce * CE(student, labels)
      + kl * T^2 * KL(softmax(teacher/T) || softmax(student/T))      (Hinton et al. 2015)
      + cosine * (1 - cos(student_logits, teacher_logits))           (the course project's term)
      + hidden * MSE(student hidden_i, teacher hidden_map(i))         (patient KD, Sun et al. 2019)

The ``reference`` preset reproduces the course project: (CE + KL(T=1) + cosine) / 3.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distill.config import LossConfig


def resolve(cfg: LossConfig) -> LossConfig:
    if cfg.preset == "reference":
        third = 1.0 / 3.0
        return LossConfig(preset="reference", ce=third, kl=third, cosine=third, hidden=0.0, temperature=1.0)
    return cfg


class DistillationLoss(nn.Module):
    def __init__(self, cfg: LossConfig, layer_map: list[int] | None = None):
        super().__init__()
        self.cfg = resolve(cfg)
        # layer_map[i] = 0-based teacher layer that student layer i imitates (its hidden output).
        self.layer_map = layer_map

    @property
    def needs_teacher(self) -> bool:
        c = self.cfg
        return c.kl > 0 or c.cosine > 0 or c.hidden > 0

    @property
    def needs_hidden(self) -> bool:
        return self.cfg.hidden > 0 and self.layer_map is not None

    def forward(self, student_logits, labels, teacher_logits=None, student_hidden=None, teacher_hidden=None,
                attention_mask=None) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.cfg
        parts: dict[str, torch.Tensor] = {}
        if c.ce > 0:
            parts["ce"] = F.cross_entropy(student_logits, labels)
        if teacher_logits is not None:
            teacher_logits = teacher_logits.detach()
            if c.kl > 0:
                t = c.temperature
                parts["kl"] = F.kl_div(F.log_softmax(student_logits / t, dim=-1),
                                       F.log_softmax(teacher_logits / t, dim=-1),
                                       reduction="batchmean", log_target=True) * t * t
            if c.cosine > 0:
                parts["cosine"] = (1 - F.cosine_similarity(student_logits, teacher_logits, dim=-1)).mean()
        if self.needs_hidden and student_hidden is not None and teacher_hidden is not None:
            parts["hidden"] = hidden_mse(student_hidden, teacher_hidden, self.layer_map, attention_mask)
        weights = {"ce": c.ce, "kl": c.kl, "cosine": c.cosine, "hidden": c.hidden}
        total = sum(weights[k] * v for k, v in parts.items())
        return total, {k: float(v.detach()) for k, v in parts.items()}


def hidden_mse(student_hidden, teacher_hidden, layer_map: list[int], attention_mask=None) -> torch.Tensor:
    """Mean squared error between mapped layer outputs over real (unpadded) tokens.

    ``*_hidden`` are transformers' ``hidden_states`` tuples: index 0 is the embedding output,
    index j + 1 the output of layer j, hence the + 1 below.
    """
    losses = []
    mask = None if attention_mask is None else attention_mask.unsqueeze(-1).to(student_hidden[0].dtype)
    for i, t in enumerate(layer_map):
        s, h = student_hidden[i + 1], teacher_hidden[t + 1].detach()
        sq = (s - h).pow(2)
        if mask is None:
            losses.append(sq.mean())
        else:
            losses.append((sq * mask).sum() / (mask.sum() * s.shape[-1]).clamp_min(1.0))
    return torch.stack(losses).mean()
