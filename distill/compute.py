"""Training compute in one vocabulary, so budgets compare across methods (Kaplan et al. 2020).

A forward pass costs about 2 x N x T floating-point operations for N weights applied to T
tokens; a training step about 6 x N x T (forward, gradients of the activations, gradients of the
weights). With frozen weights (LoRA, a frozen teacher) the weight gradients are skipped:
4 x N x T + 2 x N_trainable x T. Embedding tables are lookups, not multiplications, so N counts
only the weights outside nn.Embedding. Attention's own T^2 terms are left out (small at tweet
lengths); these are estimates for comparing methods, not hardware counters.
"""

from __future__ import annotations

from torch import nn


def matmul_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Weights that multiply activations: every parameter outside embedding tables."""
    emb = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    return int(
        sum(p.numel() for p in model.parameters() if id(p) not in emb and (p.requires_grad or not trainable_only))
    )


def training_flops(params: int, trainable: int, tokens: int) -> float:
    return float((4 * params + 2 * trainable) * tokens)


def forward_flops(params: int, tokens: int) -> float:
    return float(2 * params * tokens)
