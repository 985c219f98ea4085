"""The transformers engine: dynamic batching with a KV cache, on CPU or a GPU without vLLM.

One loop thread owns the model. Each iteration it drops finished and aborted rows, admits
waiting requests up to ``max_batch_size`` (their prompts are prefilled together, then merged
into the running batch: ``batching.BatchState``), and runs one decode step for every row. So a
request that arrives mid-generation waits one step, not until the batch drains, and a row that
finishes frees its slot at once. This is what transformers' own ``ContinuousBatchingManager``
does too, but that one samples only with temperature/top-k/top-p per request and cannot mix LoRA
adapters in a batch; requests here carry penalties, seeds, stop strings, grammar constraints
and their adapter (PEFT mixed-adapter batches: ``adapter_names`` per row).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import torch

from tuneyard.inference.batching import BatchState, prefill_inputs
from tuneyard.inference.constraints import TokenConstraint, TokenTexts
from tuneyard.inference.engine import EngineStats, GenerationRequest, Output, RequestChannel, deliver, stream_outputs
from tuneyard.inference.sampling import RowSampler, choose_tokens

log = logging.getLogger("tuneyard.inference")
BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


class _Row:
    """One choice of one request while it waits or decodes."""

    def __init__(self, req: GenerationRequest, index: int, channel: RequestChannel, vocab_size: int,
                 constraint: TokenConstraint | None):
        self.req, self.index, self.channel = req, index, channel
        params = req.params
        if params.seed is not None and index:
            params = type(params)(**{**params.__dict__, "seed": params.seed + index})
        self.sampler = RowSampler(params, vocab_size)
        self.constraint = constraint
        self.ids: list[int] = []
        self.last_token = -1
        self.generated = 0
        self.prefix_offset = self.read_offset = 0
        self.text, self.emitted = "", 0
        self.finish_reason: str | None = None
        self.aborted = False

    @property
    def done(self) -> bool:
        return self.finish_reason is not None or self.aborted


class TransformersEngine:
    name = "transformers"

    def __init__(self, model_path: str, *, adapters: dict[str, str] | None = None, device: str = "cpu",
                 max_batch_size: int = 16, max_model_len: int = 2048, threads: int = 0,
                 max_prefill_tokens: int = 4096):
        self.model_path, self.device = model_path, device
        self._initial_adapters = dict(adapters or {})
        self.max_batch_size, self.max_model_len = max_batch_size, max_model_len
        self.max_prefill_tokens, self.threads = max_prefill_tokens, threads
        self.tokenizer: Any = None
        self.model: Any = None
        self._adapters: list[str] = []
        self._waiting: queue.SimpleQueue[_Row] = queue.SimpleQueue()
        self._control: queue.SimpleQueue = queue.SimpleQueue()
        self._aborts: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rows: list[_Row] = []
        self._pending: list[_Row] = []
        self._batch: BatchState | None = None
        self._stats = EngineStats()
        self._error: str | None = None
        self._vocab: TokenTexts | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.threads > 0:
            torch.set_num_threads(self.threads)
        dtype = torch.float32 if self.device == "cpu" else torch.bfloat16
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype).to(self.device).eval()
        self.config = model.config
        self.num_layers = model.config.get_text_config().num_hidden_layers
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self.model = model
        for name, path in self._initial_adapters.items():
            self._load_adapter(name, path)
        ids = model.generation_config.eos_token_id
        ids = ids if isinstance(ids, list) else [ids]
        self.eos_ids = {i for i in ids + [self.tokenizer.eos_token_id] if i is not None}
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else next(iter(self.eos_ids), 0)
        self._batch = BatchState(self.config, self.num_layers)
        self._thread = threading.Thread(target=self._loop, name="engine-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def error(self) -> str | None:
        return self._error

    def adapters(self) -> list[str]:
        return list(self._adapters)

    def stats(self) -> dict[str, Any]:
        self._stats.active = len(self._rows)
        self._stats.waiting = self._waiting.qsize() + len(self._pending)
        return {**self._stats.as_json(), "adapters": self.adapters(), "max_batch_size_limit": self.max_batch_size,
                "device": self.device, "threads": torch.get_num_threads()}

    # -- requests ---------------------------------------------------------------------------
    def vocab(self) -> TokenTexts:
        if self._vocab is None:
            self._vocab = TokenTexts(self.tokenizer)
        return self._vocab

    def generate(self, req: GenerationRequest):
        import asyncio

        if req.adapter is not None and req.adapter not in self._adapters:
            raise ValueError(f"adapter {req.adapter!r} is not loaded")
        channel = RequestChannel(asyncio.get_running_loop(), req.n)
        for i in range(req.n):
            constraint = None
            if req.constraint is not None:
                constraint = TokenConstraint(req.constraint(), self.vocab(), req.params.max_tokens)
            self._waiting.put(_Row(req, i, channel, self.vocab_size, constraint))
        self._stats.requests += 1
        self._wake.set()
        return stream_outputs(channel, req.request_id, self.abort)

    def abort(self, request_id: str) -> None:
        with self._lock:
            self._aborts.add(request_id)
        self._wake.set()

    def load_adapter(self, name: str, path: str) -> None:
        done = threading.Event()
        box: list[BaseException] = []
        self._control.put((name, path, done, box))
        self._wake.set()
        done.wait()
        if box:
            raise box[0]

    def _load_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        if name in self._adapters:
            raise ValueError(f"an adapter named {name!r} is already loaded")
        if not self._adapters:
            self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name).eval()
        else:
            self.model.load_adapter(path, adapter_name=name)
        self._adapters.append(name)

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self) -> None:
        failures = 0
        try:
            with torch.inference_mode():
                while not self._stop.is_set():
                    try:
                        busy = self._iteration()
                        failures = 0
                    except Exception as exc:  # a failed step fails the rows in it, not the engine...
                        log.exception("engine step failed")
                        self._fail_all(exc)
                        failures, busy = failures + 1, True
                        if failures >= 3:  # ...unless every step fails: then /health reports it
                            self._error = f"{failures} decode steps failed in a row: {exc}"
                    if not busy:
                        self._wake.wait(timeout=0.5)
                        self._wake.clear()
        finally:
            if not self._stop.is_set():
                self._error = self._error or "the engine loop stopped"

    def _iteration(self) -> bool:
        self._control_messages()
        self._apply_aborts()
        self._evict()
        new = self._admit()
        outputs: list = []
        if new:
            self._prefill(new, outputs)
            self._evict()
        if self._rows:
            self._decode(outputs)
            self._evict()
        if outputs:
            deliver(outputs)
        return bool(new or self._rows)

    def _control_messages(self) -> None:
        while True:
            try:
                name, path, done, box = self._control.get_nowait()
            except queue.Empty:
                return
            try:
                self._load_adapter(name, path)
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                box.append(exc)
            done.set()

    def _apply_aborts(self) -> None:
        with self._lock:
            aborts, self._aborts = self._aborts, set()
        if not aborts:
            return
        for row in self._rows + self._pending:
            if row.req.request_id in aborts and not row.done:
                row.aborted = True
        self._stats.aborted += len(aborts)
        self._pending = [r for r in self._pending if not r.aborted]

    def _evict(self) -> None:
        keep = [i for i, r in enumerate(self._rows) if not r.done]
        if len(keep) != len(self._rows):
            self._batch.keep(keep)
            self._rows = [self._rows[i] for i in keep]

    def _admit(self) -> list[_Row]:
        while True:
            try:
                self._pending.append(self._waiting.get_nowait())
            except queue.Empty:
                break
        room = self.max_batch_size - len(self._rows)
        new: list[_Row] = []
        width = 0
        while self._pending and len(new) < room:
            row = self._pending[0]
            width = max(width, len(row.req.prompt_ids))
            if new and width * (len(new) + 1) > self.max_prefill_tokens:
                break
            new.append(self._pending.pop(0))
        return new

    def _forward(self, rows: list[_Row], **kwargs):
        if self._adapters:
            kwargs["adapter_names"] = [r.req.adapter or BASE for r in rows]
        return self.model(use_cache=True, **kwargs)

    def _prefill(self, rows: list[_Row], outputs: list) -> None:
        prompts = [r.req.prompt_ids for r in rows]
        ids, mask, positions = prefill_inputs(prompts, self.pad_id)
        fresh = BatchState(self.config, self.num_layers)
        out = self._forward(rows, input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                            position_ids=positions.to(self.device), past_key_values=fresh.cache, logits_to_keep=1)
        fresh.mask = mask.to(self.device)
        fresh.next_pos = torch.tensor([len(p) for p in prompts], dtype=torch.long, device=self.device)
        self._stats.prompt_tokens += sum(len(p) for p in prompts)
        self._sample(rows, out.logits[:, -1, :], outputs)
        self._batch.merge(fresh)
        self._rows.extend(rows)

    def _decode(self, outputs: list) -> None:
        rows = self._rows
        mask, positions = self._batch.step_inputs()
        ids = torch.tensor([[r.last_token] for r in rows], dtype=torch.long, device=self.device)
        out = self._forward(rows, input_ids=ids, attention_mask=mask, position_ids=positions,
                            past_key_values=self._batch.cache)
        self._batch.advance()
        self._stats.steps += 1
        self._stats.max_batch_size = max(self._stats.max_batch_size, len(rows))
        self._sample(rows, out.logits[:, -1, :], outputs)

    def _sample(self, rows: list[_Row], logits: torch.Tensor, outputs: list) -> None:
        tokens = choose_tokens(logits, [r.sampler for r in rows], [r.constraint for r in rows])
        for row, token in zip(rows, tokens):
            delta = self._append(row, token)
            if delta or row.done:
                outputs.append((row.channel, Output(row.index, delta, row.generated, row.done, row.finish_reason)))

    def _append(self, row: _Row, token: int) -> str:
        row.last_token = token
        row.generated += 1
        self._stats.tokens_generated += 1
        row.sampler.observe(token)
        params = row.req.params
        if row.constraint is not None:
            delta = self._push_text(row, row.constraint.accept(token))
            if row.constraint.done:
                row.finish_reason = "stop"
        elif token in self.eos_ids and not params.ignore_eos:
            row.finish_reason = "stop"
            delta = ""
        else:
            row.ids.append(token)
            delta = self._push_text(row, self._detokenize(row))
        if not row.done and (row.generated >= params.max_tokens
                             or len(row.req.prompt_ids) + row.generated >= self.max_model_len):
            row.finish_reason = "length"
        if row.done and row.finish_reason is not None:
            if row.constraint is None:
                tail = self.tokenizer.decode(row.ids[row.prefix_offset:], skip_special_tokens=True)
                head = self.tokenizer.decode(row.ids[row.prefix_offset:row.read_offset], skip_special_tokens=True)
                if len(tail) > len(head) and row.finish_reason != "stop_string":
                    row.text += tail[len(head):]
            if row.finish_reason == "stop_string":
                row.finish_reason = "stop"
            delta += row.text[row.emitted:]
            row.emitted = len(row.text)
        return delta

    def _detokenize(self, row: _Row) -> str:
        """The text the newest token adds; held back while it ends inside a UTF-8 character."""
        head = self.tokenizer.decode(row.ids[row.prefix_offset:row.read_offset], skip_special_tokens=True)
        full = self.tokenizer.decode(row.ids[row.prefix_offset:], skip_special_tokens=True)
        if len(full) > len(head) and not full.endswith("\ufffd"):
            row.prefix_offset, row.read_offset = row.read_offset, len(row.ids)
            return full[len(head):]
        return ""

    def _push_text(self, row: _Row, new: str) -> str:
        """Append text; cut at a stop string; return what is safe to send (not a possible stop prefix)."""
        stops = row.req.params.stop
        if not new:
            return ""
        before = len(row.text)
        row.text += new
        safe = len(row.text)
        if stops:
            longest = max(len(s) for s in stops)
            window_start = max(0, before - longest + 1)
            hits = [i for i in (row.text.find(s, window_start) for s in stops) if i >= 0]
            if hits:
                row.text = row.text[:min(hits)]
                row.finish_reason = "stop_string"
                return ""
            held = max((k for s in stops for k in range(1, min(len(s), len(row.text)) + 1)
                        if row.text.endswith(s[:k])), default=0)
            safe = len(row.text) - held
        delta = row.text[row.emitted:safe]
        row.emitted = max(row.emitted, safe)
        return delta

    def _fail_all(self, exc: Exception) -> None:
        rows = self._rows + self._pending
        self._rows, self._pending = [], []
        self._batch = BatchState(self.config, self.num_layers)
        failed = {}
        for row in rows:
            failed.setdefault(id(row.channel), row.channel)
        deliver([(ch, RuntimeError(f"generation failed: {exc}")) for ch in failed.values()])
