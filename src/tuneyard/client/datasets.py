"""``/v1/datasets`` and ``/v1/reward_functions``."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from tuneyard.client._base import ResourceGroup
from tuneyard.client.types import Dataset, Page, RewardFunction


def _open(file: str | Path | IO[bytes], filename: str | None) -> tuple[IO[bytes], str, bool]:
    """A binary stream, the name to send, and whether we opened it (and so must close it)."""
    if isinstance(file, (str, Path)):
        path = Path(file)
        return path.open("rb"), filename or path.name, True
    return file, filename or Path(getattr(file, "name", "upload")).name, False


class Datasets(ResourceGroup):
    def upload(self, file: str | Path | IO[bytes], name: str | None = None, *,
               filename: str | None = None) -> Dataset:
        """Upload a JSONL file (a path or a binary stream); ``name`` defaults to the file's stem."""
        stream, sent_name, owned = _open(file, filename)
        try:
            form = {"name": name or Path(sent_name).stem}
            body = self._t.json("POST", "/v1/datasets", files={"file": (sent_name, stream, "application/jsonl")},
                                data=form, timeout=600)
        finally:
            if owned:
                stream.close()
        return Dataset.model_validate(body)

    def get(self, dataset_id: str, *, include_preview: bool = True) -> Dataset:
        params = None if include_preview else {"include_preview": "false"}
        return Dataset.model_validate(self._t.json("GET", f"/v1/datasets/{dataset_id}", params=params))

    def list(self, *, limit: int = 20, after: str | None = None) -> Page[Dataset]:
        return self._list("/v1/datasets", Dataset, limit=limit, after=after)

    def delete(self, dataset_id: str) -> dict:
        return self._t.json("DELETE", f"/v1/datasets/{dataset_id}")

    def connect(self, name: str | None = None, *, source_type: str = "hf", huggingface_dataset: str | None = None,
                huggingface_config: dict | None = None, source_uri: str | None = None,
                credentials: dict | None = None, db_connection: str | None = None, db_query: str | None = None,
                **extra: Any) -> Dataset:
        """Snapshot an external source (``hf``, ``s3``, ``postgres``, ``https``) into a dataset."""
        body = _connect_body(name, source_type, huggingface_dataset, huggingface_config, source_uri, credentials,
                             db_connection, db_query, extra)
        return Dataset.model_validate(self._t.json("POST", "/v1/datasets/connect", json=body, timeout=600))

    def validate(self, name: str | None = None, *, source_type: str = "hf", huggingface_dataset: str | None = None,
                 huggingface_config: dict | None = None, source_uri: str | None = None,
                 credentials: dict | None = None, db_connection: str | None = None, db_query: str | None = None,
                 **extra: Any) -> dict:
        """Check a source without storing it: ``valid``, ``num_rows``, ``format`` or a ``reason``."""
        body = _connect_body(name, source_type, huggingface_dataset, huggingface_config, source_uri, credentials,
                             db_connection, db_query, extra)
        return self._t.json("POST", "/v1/datasets/connect/validate", json=body, timeout=600)


def _connect_body(name, source_type, hf, hf_config, source_uri, credentials, db_connection, db_query, extra) -> dict:
    body = {"name": name, "source_type": source_type, "huggingface_dataset": hf, "huggingface_config": hf_config,
            "source_uri": source_uri, "credentials": credentials, "db_connection": db_connection,
            "db_query": db_query, **extra}
    return {k: v for k, v in body.items() if v is not None}


class RewardFunctions(ResourceGroup):
    def upload(self, file: str | Path | IO[bytes], name: str | None = None, *, format: str = "trl",
               filename: str | None = None) -> RewardFunction:
        """Upload a Python file defining ``reward(prompts, completions, **kwargs)`` (``trl``) or ``miles``."""
        stream, sent_name, owned = _open(file, filename)
        try:
            form = {"name": name or Path(sent_name).stem, "format": format}
            body = self._t.json("POST", "/v1/reward_functions",
                                files={"file": (sent_name, stream, "text/x-python")}, data=form)
        finally:
            if owned:
                stream.close()
        return RewardFunction.model_validate(body)

    def get(self, reward_function_id: str, *, include_source: bool = True) -> RewardFunction:
        params = None if include_source else {"include_source": "false"}
        return RewardFunction.model_validate(
            self._t.json("GET", f"/v1/reward_functions/{reward_function_id}", params=params))

    def list(self, *, limit: int = 20, after: str | None = None) -> Page[RewardFunction]:
        return self._list("/v1/reward_functions", RewardFunction, limit=limit, after=after)

    def delete(self, reward_function_id: str) -> dict:
        return self._t.json("DELETE", f"/v1/reward_functions/{reward_function_id}")
