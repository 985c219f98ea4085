"""The KV cache of a running batch, kept as left-padded rows that requests join and leave.

Why not ``DynamicCache`` as is: its layers re-concatenate the whole cache on every decode step
(an O(length) copy per token per layer). ``GrowableLayer`` keeps spare room along the sequence
axis and writes each step in place; the buffer doubles when full.

Why left padding: every row then writes its next token into the same column, so one forward pass
decodes the whole batch. A row's own tokens sit at the right end; ``mask`` marks them, and
``next_pos`` holds each row's next position id (its real length), so padding never shifts RoPE.
Rows join (``merge``) after their prompt was prefilled in a separate small batch, and leave
(``keep``) as soon as they finish or their client goes away; columns that became padding in
every row are trimmed.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

_MIN_ROOM = 64


class GrowableLayer(DynamicLayer):
    """One layer's keys/values in a ``[batch, heads, capacity, dim]`` buffer filled up to ``length``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.buf_k: torch.Tensor | None = None
        self.buf_v: torch.Tensor | None = None
        self.length = 0

    def lazy_initialization(self, key_states, value_states) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def _ensure_room(self, like: torch.Tensor, extra: int) -> None:
        need = self.length + extra
        if self.buf_k is not None and need <= self.buf_k.shape[2]:
            return
        capacity = max(need + _MIN_ROOM, 2 * (self.buf_k.shape[2] if self.buf_k is not None else 0))
        shape = (like.shape[0], like.shape[1], capacity, like.shape[3])
        new_k, new_v = like.new_zeros(shape), like.new_zeros(shape)
        if self.buf_k is not None and self.length:
            new_k[:, :, : self.length] = self.buf_k[:, :, : self.length]
            new_v[:, :, : self.length] = self.buf_v[:, :, : self.length]
        self.buf_k, self.buf_v = new_k, new_v

    def _views(self) -> None:
        self.keys = self.buf_k[:, :, : self.length]
        self.values = self.buf_v[:, :, : self.length]

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        self._ensure_room(key_states, n)
        self.buf_k[:, :, self.length : self.length + n] = key_states
        self.buf_v[:, :, self.length : self.length + n] = value_states
        self.length += n
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    # -- batch surgery (the engine calls these between forward passes) ----------------------
    def set(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.buf_k, self.buf_v, self.length = k.contiguous(), v.contiguous(), k.shape[2]
        self.dtype, self.device, self.is_initialized = k.dtype, k.device, True
        self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.buf_k is not None:
            self.set(self.keys[indices], self.values[indices])


def new_cache(config, num_layers: int) -> DynamicCache:
    cache = DynamicCache(config=config)
    cache.layers = [GrowableLayer() for _ in range(num_layers)]
    return cache


def _left_pad(t: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    if n <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = n
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class BatchState:
    """The cache, attention mask and next positions of the rows now decoding, in row order."""

    def __init__(self, config, num_layers: int):
        self.config, self.num_layers = config, num_layers
        self.cache = new_cache(config, num_layers)
        self.mask = torch.zeros((0, 0), dtype=torch.long)
        self.next_pos = torch.zeros((0,), dtype=torch.long)

    @property
    def size(self) -> int:
        return int(self.mask.shape[0])

    @property
    def length(self) -> int:
        return int(self.mask.shape[1])

    def merge(self, other: BatchState) -> None:
        """Append ``other``'s rows (a freshly prefilled batch), padding the shorter side on the left."""
        if self.size == 0:
            self.cache, self.mask, self.next_pos = other.cache, other.mask, other.next_pos
            return
        target = max(self.length, other.length)
        pad_self, pad_other = target - self.length, target - other.length
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            k = torch.cat([_left_pad(mine.keys, pad_self, 2), _left_pad(theirs.keys, pad_other, 2)], dim=0)
            v = torch.cat([_left_pad(mine.values, pad_self, 2), _left_pad(theirs.values, pad_other, 2)], dim=0)
            mine.set(k, v)
        self.mask = torch.cat([_left_pad(self.mask, pad_self, 1), _left_pad(other.mask, pad_other, 1)], dim=0)
        self.next_pos = torch.cat([self.next_pos, other.next_pos])

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order), then drop the columns that are padding in all of them."""
        if not rows:
            self.__init__(self.config, self.num_layers)
            return
        index = torch.tensor(rows, dtype=torch.long)
        mask = self.mask[index]
        used = mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else mask.shape[1]
        for layer in self.cache.layers:
            layer.set(layer.keys[index, :, start:], layer.values[index, :, start:])
        self.mask = mask[:, start:].contiguous()
        self.next_pos = self.next_pos[index]

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Extend the mask by one column for the token about to be decoded; return (mask, position_ids)."""
        self.mask = torch.cat([self.mask, torch.ones((self.size, 1), dtype=self.mask.dtype)], dim=1)
        return self.mask, self.next_pos[:, None].clone()

    def advance(self) -> None:
        self.next_pos += 1


def prefill_inputs(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded ``input_ids``, ``attention_mask`` and ``position_ids`` for a prefill batch."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions
