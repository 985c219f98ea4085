"""SQLAlchemy tables. Every resource row has a string ``id`` (prefixed, public) and an integer
``seq`` (insertion order) that cursor pagination walks, so pages stay stable under concurrent inserts."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


# SQLite only auto-increments an INTEGER PRIMARY KEY; BigInteger there would not.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Organization(Base):
    __tablename__ = "organizations"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    plan: Mapped[str] = mapped_column(String(40), default="self_hosted")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), default="user")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(20))
    deployment_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_org_seq", "org_id", "seq"),)
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(40))
    num_rows: Mapped[int]
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str | None] = mapped_column(String(300))
    columns: Mapped[list[Any]] = mapped_column(default=list)
    # 'upload' | 'hf' | 's3' | 'postgres' | 'https'
    source_type: Mapped[str] = mapped_column(String(20), default="upload")
    source_uri: Mapped[str | None] = mapped_column(Text)
    source_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Files uploaded through /api/v1/files carry their OpenAI purpose here.
    purpose: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RewardFunction(Base):
    __tablename__ = "reward_functions"
    __table_args__ = (Index("ix_reward_functions_org_seq", "org_id", "seq"),)
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(20))
    entrypoint: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str | None] = mapped_column(String(300))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SshKey(Base):
    __tablename__ = "ssh_keys"
    __table_args__ = (Index("ix_ssh_keys_org_seq", "org_id", "seq"),)
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(60))
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(120))
    key_type: Mapped[str] = mapped_column(String(40))
    private_key_encrypted: Mapped[bytes] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CreditTransaction(Base):
    """The ledger: the balance is the sum of ``amount_usd``; charges are negative."""

    __tablename__ = "credit_transactions"
    __table_args__ = (Index("ix_credit_transactions_org_seq", "org_id", "seq"),)
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    amount_usd: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    kind: Mapped[str] = mapped_column(String(20))  # 'grant' | 'charge' | 'hold' | 'refund'
    description: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(60))
    # Makes a charge for one usage period / one job idempotent.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        Index("ix_training_jobs_org_seq", "org_id", "seq"),
        Index("ix_training_jobs_status", "status"),
    )
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    status: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20))
    base_model: Mapped[str] = mapped_column(String(300))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    validation_dataset_id: Mapped[str | None] = mapped_column(String(40))
    reward_function_ids: Mapped[list[Any]] = mapped_column(default=list)
    reward_weights: Mapped[list[Any] | None] = mapped_column(JSON)
    output_name: Mapped[str] = mapped_column(String(300))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    gpu_type: Mapped[str] = mapped_column(String(40))
    gpu_count: Mapped[int] = mapped_column(default=1)
    provider: Mapped[str] = mapped_column(String(60))
    checkpoint_destination: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    requires_heartbeat: Mapped[bool] = mapped_column(Boolean, default=False)
    last_heartbeat_at: Mapped[datetime | None]
    resume_from: Mapped[str | None] = mapped_column(String(300))
    # Which surface created it: 'veri' or 'openai' (fine_tuning.job); suffix for ft: names.
    origin: Mapped[str] = mapped_column(String(20), default="veri")
    suffix: Mapped[str | None] = mapped_column(String(120))
    current_step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int | None]
    current_loss: Mapped[float | None] = mapped_column(Float)
    trained_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    # What the job was expected to cost when it was created (the credit held for it).
    estimated_cost_usd: Mapped[float | None] = mapped_column(Float)
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Scheduler bookkeeping: which worker holds it, until when, and the executor's handle.
    worker_id: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None]
    executor: Mapped[str | None] = mapped_column(String(20))
    executor_handle: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    provisioning_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # Its fine-tuned model was deleted (DELETE /api/v1/models/{id}): checkpoints gone, no longer listed.
    model_deleted_at: Mapped[datetime | None]


class JobEvent(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq_in_job"),)
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id"), index=True)
    seq_in_job: Mapped[int]
    type: Mapped[str] = mapped_column(String(40))
    level: Mapped[str] = mapped_column(String(10), default="info")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobLogLine(Base):
    __tablename__ = "job_log_lines"
    __table_args__ = (UniqueConstraint("job_id", "line_no"),)
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id"), index=True)
    line_no: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id"), index=True)
    step: Mapped[int]
    final: Mapped[bool] = mapped_column(Boolean, default=False)
    blob_prefix: Mapped[str] = mapped_column(String(300))
    files: Mapped[list[Any]] = mapped_column(default=list)
    # The full Trainer checkpoint (optimizer state too) on the worker that wrote it, for resuming.
    local_path: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageRecord(Base):
    """One metered period of one running resource (a training job or a deployment) and what it
    cost. Periods of a resource are contiguous and unique by start, so a period is charged once."""

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("resource_kind", "resource_id", "period_start", name="uq_usage_records_period"),
        Index("ix_usage_records_org_end", "org_id", "period_end"),
        Index("ix_usage_records_resource", "resource_kind", "resource_id"),
    )
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    resource_kind: Mapped[str] = mapped_column(String(20))  # 'training_job' | 'deployment'
    resource_id: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    seconds: Mapped[float] = mapped_column(Float)
    gpu_type: Mapped[str] = mapped_column(String(40))
    gpu_count: Mapped[int]
    provider: Mapped[str] = mapped_column(String(60))
    usd_per_hour: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    # What was charged, and what could not be because the organization's credit ran out.
    amount_usd: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    unbilled_usd: Mapped[Decimal] = mapped_column(Numeric(18, 6), default=Decimal(0))
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    transaction_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CreditHold(Base):
    """Credit set aside for a resource's estimate when it is created, so that concurrent creations
    cannot together promise more than the balance. Released when the resource ends."""

    __tablename__ = "credit_holds"
    __table_args__ = (
        UniqueConstraint("resource_kind", "resource_id", name="uq_credit_holds_resource"),
        Index("ix_credit_holds_org_open", "org_id", "released_at"),
    )
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    resource_kind: Mapped[str] = mapped_column(String(20))
    resource_id: Mapped[str] = mapped_column(String(40))
    amount_usd: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None]


class Deployment(Base):
    """A served model: a base model, or a training job's output (a LoRA adapter on its base, or full
    weights). The supervisor that runs its worker process keeps its bookkeeping here, so another
    supervisor (after a restart, or on another host) can re-attach to the same worker."""

    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_org_seq", "org_id", "seq"),
        Index("ix_deployments_status", "status"),
    )
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(300))  # as the caller named it
    source: Mapped[str] = mapped_column(String(20))  # 'training_job' | 'huggingface'
    base_model: Mapped[str] = mapped_column(String(300))
    training_job_id: Mapped[str | None] = mapped_column(String(40))
    checkpoint_id: Mapped[str | None] = mapped_column(String(40))
    adapter: Mapped[bool] = mapped_column(Boolean, default=False)  # served as a LoRA adapter on base_model
    engine: Mapped[str] = mapped_column(String(20), default="auto")
    gpu_type: Mapped[str] = mapped_column(String(40))
    gpu_count: Mapped[int] = mapped_column(default=1)
    provider: Mapped[str] = mapped_column(String(60))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Supervisor bookkeeping: who runs the worker, until when, and how to reach it.
    worker_id: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None]
    worker_handle: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    worker_url: Mapped[str | None] = mapped_column(String(300))
    restarts: Mapped[int] = mapped_column(default=0)
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    health_checked_at: Mapped[datetime | None]
    health_failures: Mapped[int] = mapped_column(default=0)
    # Usage (what billing reads): requests and tokens served, seconds spent serving.
    total_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    serving_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    accounted_at: Mapped[datetime | None]
    cost_per_hour_usd: Mapped[float] = mapped_column(Float, default=0.0)
    total_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    provisioning_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]


class DeploymentEvent(Base):
    __tablename__ = "deployment_events"
    __table_args__ = (Index("ix_deployment_events_dep_seq", "deployment_id", "seq"),)
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"))
    type: Mapped[str] = mapped_column(String(40))
    level: Mapped[str] = mapped_column(String(10), default="info")
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeploymentRequest(Base):
    """One inference request through the gateway (written in batches, off the request path)."""

    __tablename__ = "deployment_requests"
    __table_args__ = (
        Index("ix_deployment_requests_dep_seq", "deployment_id", "seq"),
        Index("ix_deployment_requests_dep_created", "deployment_id", "created_at"),
    )
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"))
    org_id: Mapped[str] = mapped_column(String(40))
    status_code: Mapped[int]
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    tpot_ms: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    finish_reason: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    client_disconnected: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]
