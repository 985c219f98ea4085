"""Typed views of the ``/v1`` objects.

Each model names the fields the CLI and most callers use and keeps every other field the server
sends (``extra="allow"``), so ``to_dict()`` is always the server's whole object and a newer server's
fields are never lost. Timestamps stay ISO-8601 strings, as sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

TERMINAL_JOB_STATUSES = frozenset({"completed", "failed", "cancelled"})
SETTLED_DEPLOYMENT_STATUSES = frozenset({"serving", "failed", "stopped", "scaled_to_zero"})


class APIObject(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    object: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Resource(APIObject):
    id: str
    created_at: str | None = None


class Dataset(Resource):
    name: str
    format: str | None = None
    num_rows: int | None = None
    bytes: int | None = None
    columns: list[str] | None = None
    filename: str | None = None
    source_type: str | None = None
    source_uri: str | None = None
    preview: list[dict] | None = None


class RewardFunction(Resource):
    name: str
    format: str | None = None
    entrypoint: str | None = None
    filename: str | None = None
    bytes: int | None = None
    source: str | None = None


class JobErrorInfo(APIObject):
    code: str | None = None
    message: str | None = None


class TrainingJob(Resource):
    status: str
    base_model: str | None = None
    method: str | None = None
    dataset_id: str | None = None
    reward_function_id: str | None = None
    output_name: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    gpu_requested: dict[str, Any] | None = None
    gpu: dict[str, Any] | None = None
    current_step: int | None = None
    total_steps: int | None = None
    current_loss: float | None = None
    duration_seconds: float | None = None
    cost_usd: float | None = None
    error: JobErrorInfo | None = None
    download_url: str | None = None
    started_at: str | None = None
    completed_at: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    @property
    def error_message(self) -> str | None:
        return self.error.message if self.error else None


class JobEvent(Resource):
    seq: int | None = None
    type: str
    level: str | None = None
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class JobProgress(APIObject):
    """What ``TrainingJobs.wait(on_progress=...)`` reports: the job's state plus the event that moved it."""

    job_id: str
    status: str
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    reward: float | None = None
    event: JobEvent | None = None


class ModelFile(APIObject):
    path: str
    url: str
    bytes: int | None = None


class JobModel(APIObject):
    job_id: str | None = None
    output_name: str | None = None
    base_model: str | None = None
    checkpoint_id: str | None = None
    step: int | None = None
    download_url: str | None = None
    files: list[ModelFile] = Field(default_factory=list)


class Deployment(Resource):
    status: str
    name: str
    model: str
    source: str | None = None
    endpoint_url: str | None = None
    gpu: dict[str, Any] | None = None
    error: Any = None
    cost_per_hour_usd: float | None = None
    total_cost_usd: float | None = None
    total_requests: int | None = None

    @property
    def settled(self) -> bool:
        return self.status in SETTLED_DEPLOYMENT_STATUSES


class ApiKey(Resource):
    name: str | None = None
    kind: str | None = None
    key_prefix: str | None = None
    key: str | None = None  # the plaintext, present only in the create response
    deployment_id: str | None = None
    last_used_at: str | None = None
    expires_at: str | None = None
    revoked: bool | None = None


class Balance(APIObject):
    org_id: str | None = None
    plan: str | None = None
    balance_usd: float
    currency: str | None = None


class Transaction(Resource):
    amount_usd: float
    type: str | None = None
    description: str | None = None
    reference: str | None = None


class Model(Resource):
    type: str | None = None
    source: str | None = None
    base_model: str | None = None
    job_id: str | None = None


class Me(APIObject):
    org_id: str | None = None
    organization_name: str | None = None
    plan: str | None = None
    api_key_id: str | None = None


T = TypeVar("T", bound=APIObject)


class Page(BaseModel, Generic[T]):
    """One page of a list: iterate it, or call ``auto_paging_iter()`` to walk every page."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    data: list[T]
    has_more: bool = False
    fetch_next: Callable[[str], "Page[T]"] | None = Field(default=None, exclude=True, repr=False)

    def __iter__(self) -> Iterator[T]:  # type: ignore[override]
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> T:
        return self.data[i]

    @property
    def next_cursor(self) -> str | None:
        if not self.has_more or not self.data:
            return None
        return getattr(self.data[-1], "id", None)

    def next_page(self) -> "Page[T] | None":
        cursor = self.next_cursor
        if cursor is None or self.fetch_next is None:
            return None
        return self.fetch_next(cursor)

    def auto_paging_iter(self) -> Iterator[T]:
        page: Page[T] | None = self
        while page is not None:
            yield from page.data
            page = page.next_page()

    def to_dict(self) -> dict[str, Any]:
        return {"object": "list", "data": [item.to_dict() for item in self.data], "has_more": self.has_more}
