"""Choosing each row's next token from the batch's logits, with per-request settings.

One forward pass serves requests with different temperatures, penalties, seeds and constraints,
so the cheap common cases are vectorized (greedy rows: one ``argmax``; unseeded sampling rows:
one ``multinomial``) and only rows that need it get individual work (penalties, ``logit_bias``,
``top_p``, a seeded generator, a grammar constraint).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

# Candidates a constrained row tries first (in probability order) before scanning the vocabulary.
_CONSTRAINED_TOP = 64


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    logit_bias: dict[int, float] = field(default_factory=dict)
    ignore_eos: bool = False


class RowSampler:
    """Per-row sampling state: its settings, its generator (when seeded) and its counts."""

    def __init__(self, params: SamplingParams, vocab_size: int):
        self.params = params
        self.vocab_size = vocab_size
        self.generator: torch.Generator | None = None
        if params.seed is not None and params.temperature > 0:
            self.generator = torch.Generator().manual_seed(int(params.seed))
        self.counts: dict[int, int] = {}

    @property
    def greedy(self) -> bool:
        return self.params.temperature <= 0

    @property
    def simple(self) -> bool:
        """No per-row work before sampling: the vectorized path applies."""
        p = self.params
        return (not p.presence_penalty and not p.frequency_penalty and not p.logit_bias and p.top_p >= 1.0
                and self.generator is None)

    def observe(self, token: int) -> None:
        self.counts[token] = self.counts.get(token, 0) + 1

    def adjust(self, logits: torch.Tensor) -> torch.Tensor:
        """Penalties and bias on one row's logits (a 1-D float tensor, modified in place)."""
        p = self.params
        if (p.presence_penalty or p.frequency_penalty) and self.counts:
            ids = torch.tensor(list(self.counts), dtype=torch.long)
            counts = torch.tensor(list(self.counts.values()), dtype=logits.dtype)
            logits[ids] -= p.presence_penalty + p.frequency_penalty * counts
        for token, bias in p.logit_bias.items():
            if 0 <= token < logits.shape[0]:
                logits[token] += bias
        return logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits / self.params.temperature, dim=-1)
        if self.params.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            cumulative = sorted_probs.cumsum(-1)
            cut = cumulative - sorted_probs > self.params.top_p
            sorted_probs[cut] = 0
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        return probs

    def draw(self, probs: torch.Tensor) -> int:
        return int(torch.multinomial(probs, 1, generator=self.generator))


def choose_tokens(logits: torch.Tensor, samplers: list[RowSampler], constraints: list[Any | None]) -> list[int]:
    """The next token of each row. ``constraints[i]`` (or None) filters the candidates of row i."""
    logits = logits.float()
    out: list[int | None] = [None] * len(samplers)
    greedy_rows, plain_rows = [], []
    for i, (s, c) in enumerate(zip(samplers, constraints)):
        if c is not None:
            out[i] = _constrained(logits[i], s, c)
        elif s.simple:
            (greedy_rows if s.greedy else plain_rows).append(i)
        else:
            row = s.adjust(logits[i].clone())
            out[i] = int(row.argmax()) if s.greedy else s.draw(s.probabilities(row))
    if greedy_rows:
        picked = logits[greedy_rows].argmax(dim=-1).tolist()
        for i, t in zip(greedy_rows, picked):
            out[i] = t
    if plain_rows:
        temps = torch.tensor([samplers[i].params.temperature for i in plain_rows], dtype=logits.dtype)[:, None]
        probs = torch.softmax(logits[plain_rows] / temps, dim=-1)
        picked = torch.multinomial(probs, 1).squeeze(-1).tolist()
        for i, t in zip(plain_rows, picked):
            out[i] = t
    return out  # type: ignore[return-value]


def _constrained(logits: torch.Tensor, sampler: RowSampler, constraint) -> int:
    """Sample among the likeliest tokens the constraint accepts; when none of them fits, the grammar's
    shortest way on (one character) is taken."""
    forced = constraint.forced_token()
    if forced is not None:
        return forced
    row = sampler.adjust(logits.clone())
    top = torch.topk(row, min(_CONSTRAINED_TOP, row.shape[0]))
    allowed = [(t, v) for t, v in zip(top.indices.tolist(), top.values.tolist()) if constraint.allows(t)]
    if not allowed:
        return constraint.fallback_token()
    if sampler.greedy or len(allowed) == 1:
        return allowed[0][0]
    values = torch.tensor([v for _, v in allowed])
    probs = sampler.probabilities(values)
    return allowed[sampler.draw(probs)][0]
