"""A small character-level GPT, built from torch's own layers (the worked example beyond the paper).

Token and position embeddings → ``nn.TransformerEncoder`` (pre-norm blocks, causal
self-attention by ``nn.MultiheadAttention``, GELU MLP) → ``LayerNorm`` → ``Linear`` to the
vocabulary. Every weight is a standard torch layer, so :mod:`bregman.params` classifies each of
them (attention projections by head, MLP rows, embeddings) without help. Input: ``B × T`` token
ids (any integer dtype, T ≤ ``context``); output: ``B × T × vocab`` next-token logits.

Example:
    >>> import torch
    >>> model = CharGPT()
    >>> model(torch.randint(0, 128, (2, 64))).shape
    torch.Size([2, 64, 128])
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["CharGPT"]


class CharGPT(nn.Module):
    """A decoder-only transformer over characters (nanoGPT's shape on torch's layers).

    Args:
        vocab: number of distinct tokens (128: ASCII, see :mod:`bregman.data.text`).
        context: the longest input sequence (the learned position table has this many rows).
        dim: model width d (a multiple of ``heads``).
        heads: attention heads per block (head size d / heads).
        layers: transformer blocks.
        dropout: dropout in the blocks (0: none, as small models on enough data need none).
    """

    def __init__(self, vocab: int = 128, context: int = 64, dim: int = 96, heads: int = 4, layers: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.context = context
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(context, dim)
        block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        # -inf above the diagonal: position t attends to positions <= t only
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[1]
        if t > self.context:
            raise ValueError(f"input of {t} tokens is longer than the model's context of {self.context}")
        h = self.tokens(x.long()) + self.positions(torch.arange(t, device=x.device))
        h = self.blocks(h, mask=self.causal[:t, :t], is_causal=True)
        return self.head(self.norm(h))
