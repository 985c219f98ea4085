"""The transformers engine in-process, on the bundled model: batched decoding gives exactly what
``generate`` gives one request at a time (with padding, late joiners and mixed LoRA adapters in
one batch), stop strings, and the JSON constraint."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
import torch

from tuneyard.inference.constraints import JsonAcceptor, SequenceAcceptor
from tuneyard.inference.engine import GenerationRequest
from tuneyard.inference.sampling import SamplingParams
from tuneyard.modelhub import resolve_model

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def make_adapters(root) -> None:
    """Two real PEFT LoRA adapters with random (non-zero) weights, so each visibly changes the output;
    saved to ``root/first`` and ``root/second``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_model(MODEL).path)
    cfg = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    model = get_peft_model(base, cfg, adapter_name="first")
    torch.manual_seed(2)
    model.add_adapter("second", cfg)
    model.save_pretrained(root)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from tuneyard.inference.hf_engine import TransformersEngine

    root = tmp_path_factory.mktemp("adapters")
    make_adapters(root)
    eng = TransformersEngine(str(resolve_model(MODEL).path), adapters={"first": str(root / "first")}, threads=1,
                             max_batch_size=8)
    eng.start()
    eng.load_adapter("second", str(root / "second"))  # a second adapter on the same loaded base, at runtime
    yield eng
    eng.stop()


def prompt(eng, text: str) -> list[int]:
    return eng.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             return_dict=True)["input_ids"]


async def run(eng, req: GenerationRequest, delay: float = 0.0) -> tuple[str, str]:
    await asyncio.sleep(delay)
    text, reason = "", None
    async for out in eng.generate(req):
        text += out.text
        reason = out.finish_reason or reason
    return text, reason


def reference(eng, ids: list[int], adapter: str | None, n: int) -> str:
    """One request alone through transformers' generate, with the same adapter active."""
    model = eng.model
    with torch.inference_mode():
        if adapter is None:
            with model.disable_adapter():
                out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=n, do_sample=False)
        else:
            model.set_adapter(adapter)
            out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=n, do_sample=False)
    return eng.tokenizer.decode(out[0][len(ids):], skip_special_tokens=True)


def test_batched_decoding_matches_generate_with_mixed_adapters(engine):
    texts = ["Hi", "Write a story about a cat who lives in Paris and loves cheese.", "What is 2+2?",
             "Name three colors."]
    adapters = [None, "first", "second", "first"]
    reqs = [GenerationRequest(f"r{i}", prompt(engine, t), SamplingParams(max_tokens=8, temperature=0),
                              adapter=adapters[i]) for i, t in enumerate(texts)]

    async def all_of_them():  # staggered: later requests join a batch that is already decoding
        return await asyncio.gather(*[run(engine, r, delay=0.15 * i) for i, r in enumerate(reqs)])

    results = asyncio.run(all_of_them())
    assert engine.stats()["max_batch_size"] > 1
    for req, (text, _) in zip(reqs, results):
        assert text == reference(engine, req.prompt_ids, req.adapter, 8), req.adapter
    # The adapters really change the output.
    same = prompt(engine, "Tell me about the sea.")

    async def each_adapter():
        return await asyncio.gather(*[run(engine, GenerationRequest(f"s{a}", same, SamplingParams(
            max_tokens=8, temperature=0), adapter=a)) for a in (None, "first", "second")])

    outs = asyncio.run(each_adapter())
    assert len({t for t, _ in outs}) == 3


def test_stop_strings_and_lengths(engine):
    ids = prompt(engine, "Count from 1 to 10, separated by commas.")
    full, reason = asyncio.run(run(engine, GenerationRequest("full", ids, SamplingParams(max_tokens=20,
                                                                                        temperature=0))))
    assert reason in ("stop", "length")
    cut, reason = asyncio.run(run(engine, GenerationRequest("cut", ids, SamplingParams(
        max_tokens=20, temperature=0, stop=["4"]))))
    assert reason == "stop" and cut == full[:full.index("4")]
    fixed, reason = asyncio.run(run(engine, GenerationRequest("fixed", prompt(engine, "Hi"), SamplingParams(
        max_tokens=12, temperature=0, ignore_eos=True))))
    assert reason == "length" and fixed


def test_seeded_sampling_is_reproducible(engine):
    ids = prompt(engine, "Say something.")
    params = SamplingParams(max_tokens=10, temperature=1.0, top_p=0.9, seed=123, presence_penalty=0.5)
    first = asyncio.run(run(engine, GenerationRequest("x", ids, params, n=2)))
    again = asyncio.run(run(engine, GenerationRequest("y", ids, params, n=2)))
    assert first == again


def test_json_constraint_always_completes(engine):
    ids = prompt(engine, "Describe a dog as a JSON object.")
    for budget in (3, 7, 16):
        text, _ = asyncio.run(run(engine, GenerationRequest(f"j{budget}", ids, SamplingParams(
            max_tokens=budget, temperature=1.0, seed=budget), constraint=JsonAcceptor)))
        assert isinstance(json.loads(text), dict), text


def test_json_acceptor_closes_any_prefix():
    acceptor = JsonAcceptor()
    alphabet = '{}[]",:0123456789-.eE+ntrufalsb\\u ' + "\n"
    rng = random.Random(0)
    for _ in range(3000):
        state, text = acceptor.initial(), ""
        for _ in range(rng.randint(1, 40)):
            options = [ch for ch in alphabet if acceptor.step(state, ch) is not None]
            if not options or acceptor.done(state):
                break
            ch = rng.choice(options)
            state, text = acceptor.step(state, ch), text + ch
        assert isinstance(json.loads(text + acceptor.closing(state)), dict)
    assert acceptor.step(acceptor.initial(), "[") is None  # json_object: the top level is an object
    tool = SequenceAcceptor([("lit", '{"name": "'), ("choice", ["get", "get_weather"]), ("lit", '", "arguments": '),
                             ("json", JsonAcceptor()), ("lit", "}")])
    state = tool.initial()
    for ch in '{"name": "get_w':
        state = tool.step(state, ch)
    assert json.loads('{"name": "get_w' + tool.closing(state)) == {"name": "get_weather", "arguments": {}}
