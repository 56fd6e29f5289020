"""The distillation loss as one module: its weights and temperature are its only state.

total = ce * CE(student, labels)
      + kl * T^2 * KL(softmax(teacher/T) || softmax(student/T))      (Hinton et al. 2015)
      + cosine * (1 - cos(student_logits, teacher_logits))           (the course project's term)
      + hidden * MSE(student hidden_i, teacher hidden_map(i))         (patient KD, Sun et al. 2019)
      + attention * KL(A_teacher || A_student) per mapped layer        (MiniLM, Wang et al. 2020)
      + value_relation * KL(VR_teacher || VR_student) per mapped layer (MiniLM)
      + vectors * (1 - cos(student vector, teacher sentence vector))  (static student, methods.static_teacher_vectors)
      + logits_mse * MSE(student_logits, teacher_logits)              (static student, methods.static_logits_mse;
                                                                       Tang et al. 2019)

where A = softmax(Q K^T / sqrt(d_head)) is a layer's self-attention distribution and
VR = softmax(V V^T / sqrt(d_head)) its value relation, per head, over real (unpadded) tokens.
Examples labelled -1 (teacher-labelled pool and augmented texts) get every term but CE.

The ``reference`` preset reproduces the course project: (CE + KL(T=1) + cosine) / 3.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.recipe import LossConfig


def resolve(cfg: LossConfig) -> LossConfig:
    if cfg.preset == "reference":
        third = 1.0 / 3.0
        return LossConfig(preset="reference", ce=third, kl=third, cosine=third, hidden=0.0, attention=0.0,
                          value_relation=0.0, temperature=1.0)
    return cfg


class DistillationLoss(nn.Module):
    def __init__(self, cfg: LossConfig, layer_map: list[int] | None = None, vectors: float = 0.0,
                 logits_mse: float = 0.0):
        super().__init__()
        self.cfg = resolve(cfg)
        # The static student's own terms (method settings, not loss-section ones, so that adding them left every
        # other method's fingerprint as it was): their weights.
        self.vectors = float(vectors)
        self.logits_mse = float(logits_mse)
        # layer_map[i] = 0-based teacher layer that student layer i imitates (its hidden output).
        self.layer_map = layer_map

    @property
    def needs_teacher(self) -> bool:
        c = self.cfg
        return c.kl > 0 or c.cosine > 0 or c.hidden > 0 or self.logits_mse > 0 or self.needs_relations

    @property
    def needs_vectors(self) -> bool:
        return self.vectors > 0

    @property
    def needs_hidden(self) -> bool:
        return self.cfg.hidden > 0 and self.layer_map is not None

    @property
    def needs_relations(self) -> bool:
        """Attention / value-relation terms: they need each mapped layer's queries, keys and values."""
        return (self.cfg.attention > 0 or self.cfg.value_relation > 0) and self.layer_map is not None

    def forward(self, student_logits, labels, teacher_logits=None, student_hidden=None, teacher_hidden=None,
                attention_mask=None, student_qkv=None, teacher_qkv=None,
                num_heads: int | None = None, student_vectors=None,
                teacher_vectors=None) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.cfg
        parts: dict[str, torch.Tensor] = {}
        labelled = labels >= 0
        if c.ce > 0 and bool(labelled.any()):
            parts["ce"] = F.cross_entropy(student_logits[labelled], labels[labelled])
        if teacher_logits is not None:
            teacher_logits = teacher_logits.detach()
            if c.kl > 0:
                t = c.temperature
                parts["kl"] = F.kl_div(F.log_softmax(student_logits / t, dim=-1),
                                       F.log_softmax(teacher_logits / t, dim=-1),
                                       reduction="batchmean", log_target=True) * t * t
            if c.cosine > 0:
                parts["cosine"] = (1 - F.cosine_similarity(student_logits, teacher_logits, dim=-1)).mean()
            if self.logits_mse > 0:
                parts["logits_mse"] = F.mse_loss(student_logits, teacher_logits)
        if self.needs_hidden and student_hidden is not None and teacher_hidden is not None:
            parts["hidden"] = hidden_mse(student_hidden, teacher_hidden, self.layer_map, attention_mask)
        if self.needs_relations and student_qkv is not None and teacher_qkv is not None:
            # student_qkv[i]: student layer i; teacher_qkv[i]: teacher layer layer_map[i] (captured for the map only)
            pairs = list(zip(student_qkv, teacher_qkv, strict=True))
            if c.attention > 0:
                parts["attention"] = torch.stack([relation_kl(s[0], s[1], t[0].detach(), t[1].detach(), num_heads,
                                                              attention_mask) for s, t in pairs]).mean()
            if c.value_relation > 0:
                parts["value_relation"] = torch.stack([relation_kl(s[2], s[2], t[2].detach(), t[2].detach(), num_heads,
                                                                   attention_mask) for s, t in pairs]).mean()
        if self.needs_vectors and student_vectors is not None and teacher_vectors is not None:
            parts["vectors"] = (1 - F.cosine_similarity(student_vectors, teacher_vectors.detach(), dim=-1)).mean()
        weights = {k: getattr(c, k) for k in ("ce", "kl", "cosine", "hidden", "attention", "value_relation")}
        weights["vectors"] = self.vectors
        weights["logits_mse"] = self.logits_mse
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


def relation_log_probs(a: torch.Tensor, b: torch.Tensor, num_heads: int, attention_mask=None) -> torch.Tensor:
    """log softmax(a_h b_h^T / sqrt(d_head)) per head: (batch, heads, seq, seq), padded keys excluded.

    With a = queries and b = keys of a layer this is its self-attention distribution; with
    a = b = values it is MiniLM's value relation.
    """
    bsz, seq, width = a.shape
    d = width // num_heads
    a = a.view(bsz, seq, num_heads, d).transpose(1, 2)
    b = b.view(bsz, seq, num_heads, d).transpose(1, 2)
    scores = a @ b.transpose(-1, -2) / d ** 0.5
    if attention_mask is not None:
        scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
    return F.log_softmax(scores.float(), dim=-1)


def relation_kl(s_a, s_b, t_a, t_b, num_heads: int, attention_mask=None) -> torch.Tensor:
    """KL(teacher relation || student relation), summed over keys, averaged over heads and real query tokens."""
    log_s = relation_log_probs(s_a, s_b, num_heads, attention_mask)
    log_t = relation_log_probs(t_a, t_b, num_heads, attention_mask)
    kl = log_t.exp() * (log_t - log_s)
    if attention_mask is not None:   # padded keys carry no probability; keep their huge logs out of the sum
        kl = kl.masked_fill(attention_mask[:, None, None, :] == 0, 0.0)
    kl = kl.sum(-1)                                          # (batch, heads, query)
    if attention_mask is None:
        return kl.mean()
    q = attention_mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * q).sum() / q.sum().clamp_min(1.0)
