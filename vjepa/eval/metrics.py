"""Classification metrics of the frozen-evaluation protocol."""

from __future__ import annotations

import torch


def view_averaged_probs(logits: torch.Tensor) -> torch.Tensor:
    """[B, V, C] logits -> [B, C] probabilities: softmax per view, then the mean over views."""
    return logits.float().softmax(dim=-1).mean(dim=1)


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    """How many rows have their label among the ``k`` highest scores (k capped at #classes)."""
    k = min(k, scores.shape[-1])
    top = scores.topk(k, dim=-1).indices
    return int((top == labels[:, None]).any(dim=-1).sum())


def accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict:
    """{top1, top5, n}: accuracies in percent."""
    n = len(labels)
    out = {f"top{k}": 100.0 * topk_correct(scores, labels, k) / max(n, 1) for k in ks}
    out["n"] = n
    return out
