"""The character-level GPT: causal, any integer input, and every weight classified."""
from __future__ import annotations

import pytest
import torch

from bregman.models import create_model
from bregman.params import classify


def test_output_at_t_depends_on_inputs_up_to_t_only():
    torch.manual_seed(0)
    model = create_model("charlm_gpt").eval()
    x = torch.randint(0, 128, (2, 64), dtype=torch.uint8)
    y = x.clone()
    y[:, 40:] = torch.randint(0, 128, (2, 24), dtype=torch.uint8)
    with torch.no_grad():
        a, b = model(x), model(y)
    assert a.shape == (2, 64, 128)
    torch.testing.assert_close(a[:, :40], b[:, :40])
    assert not torch.allclose(a[:, 40:], b[:, 40:])
    with pytest.raises(ValueError, match="longer than the model's context of 64"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_size_and_kinds():
    model = create_model("charlm_gpt")
    assert sum(p.numel() for p in model.parameters()) == 254_720
    kinds = {}
    for info in classify(model):
        kinds[info.kind] = kinds.get(info.kind, 0) + 1
    assert kinds == {"embedding": 2, "attention": 4, "linear": 5, "other": 19}
