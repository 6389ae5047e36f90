"""LLaVA-SG's scene graph expression: message passing stays within a frame, the prompt is
injected by attention and its relevance activates the nodes that match it."""

from __future__ import annotations

import math

import torch

from scenellm.model.components.spatial.sge import (
    PromptInjection,
    SceneGraphExpression,
    SGEConfig,
)

BOXES = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.3, 0.0, 0.5, 0.2], [0.6, 0.6, 0.9, 0.9],
                      [0.1, 0.1, 0.3, 0.3]])
FRAMES = torch.tensor([0, 0, 0, 1])


def _sge(text_dim: int | None = 6) -> SceneGraphExpression:
    torch.manual_seed(0)
    sge = SceneGraphExpression(SGEConfig(rounds=2), token_dim=4, out_dim=8)
    if text_dim:
        sge.attach_text(text_dim)
    return sge.eval()


def test_injection_equals_the_formula_by_hand():
    torch.manual_seed(1)
    inject = PromptInjection(4)
    h, text = torch.randn(3, 4), torch.randn(2, 4)
    out, relevance = inject(h, text)
    q, k, v = inject.query(h), inject.key(text), inject.value(text)
    for i in range(3):
        s = torch.stack([q[i] @ k[t] for t in range(2)]) / 2.0  # √d = 2
        context = torch.softmax(s, 0) @ v
        r = torch.sigmoid(q[i] @ k.mean(0) / 2.0 + inject.bias)
        torch.testing.assert_close(relevance[i], r)
        torch.testing.assert_close(out[i], h[i] + r * inject.out(context))


def test_relevance_is_highest_for_the_node_that_matches_the_prompt():
    inject = PromptInjection(3)
    with torch.no_grad():
        for layer in (inject.query, inject.key, inject.value, inject.out):
            layer.weight.copy_(torch.eye(3))
            layer.bias.zero_()
    text = torch.tensor([[2.0, 0.0, 0.0]])  # the prompt points along x
    h = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [-2.0, 0.0, 0.0]])
    _, relevance = inject(h, text)
    expected = torch.sigmoid(torch.tensor([4.0, 0.0, -4.0]) / math.sqrt(3))
    torch.testing.assert_close(relevance, expected)
    assert relevance.argmax() == 0 and relevance.argmin() == 2


def test_message_passing_reaches_objects_of_the_same_frame_only():
    sge = _sge()
    h = torch.randn(4, 8)
    base = sge.message_passing(h, BOXES, FRAMES)
    moved = h.clone()
    moved[2] += 4.0
    out = sge.message_passing(moved, BOXES, FRAMES)
    assert not torch.allclose(out[0], base[0])  # 2 is in 0's frame: its message changed
    torch.testing.assert_close(out[3], base[3])  # frame 1 is untouched


def test_the_prompt_changes_the_frame_tokens_and_no_prompt_uses_the_learned_text():
    sge = _sge()
    tokens = torch.randn(4, 4)
    a = sge(tokens, BOXES, FRAMES, 3, text=torch.randn(3, 6))
    b = sge(tokens, BOXES, FRAMES, 3, text=torch.randn(3, 6))
    assert not torch.allclose(a[:2], b[:2])
    torch.testing.assert_close(sge(tokens, BOXES, FRAMES, 3, text=None),
                               sge(tokens, BOXES, FRAMES, 3, text=torch.zeros(0, 6)))
    assert torch.equal(a[2], sge.empty_token.detach())  # frame 2 has no object


def test_frame_token_is_the_relevance_weighted_mean_of_its_nodes():
    sge = _sge(text_dim=None)
    tokens = torch.randn(4, 4)
    frame_tokens, states = sge(tokens, BOXES, FRAMES, 2, return_objects=True)
    h = sge.message_passing(sge.embed(tokens, BOXES), BOXES, FRAMES)
    _, r = sge.inject(h, sge.learned_text)
    pooled = (r[:3, None] * states[:3]).sum(0) / r[:3].sum()
    torch.testing.assert_close(frame_tokens[0], sge.frame_proj(pooled))
