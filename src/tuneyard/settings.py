"""Settings from the environment (prefix ``TUNEYARD_``).

One object, read once per process. Everything that differs between a laptop and a cluster is
chosen here; code elsewhere never branches on "embedded vs scale" beyond picking an
implementation from these values.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "tuneyard"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEYARD_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    # Empty means "a SQLite file in the data dir".
    database_url: str = ""
    # Empty means "a folder in the data dir"; s3://bucket/prefix for object storage.
    storage_url: str = ""
    s3_endpoint_url: str | None = None
    # The S3 endpoint as browsers and remote runners reach it, when that differs (download links).
    s3_public_endpoint_url: str | None = None
    bootstrap_key: str | None = None
    # Public base URL used to build absolute links (signed download URLs). Empty = from the request.
    public_url: str = ""
    master_key: str | None = None

    max_upload_bytes: int = 512 * 1024 * 1024
    signed_url_ttl_seconds: int = 3600
    # Credit a new organization starts with, in USD.
    initial_credit_usd: float = 100.0
    max_concurrent_jobs_per_org: int = 4
    # Training jobs that may run at once on this machine's CPU (when it has no GPU).
    cpu_job_slots: int = 1
    # A job with requires_heartbeat is cancelled when no heartbeat came for this long.
    heartbeat_timeout_seconds: int = 300
    # Run the scheduler inside `tuneyard serve` (single-machine mode); `tuneyard worker` runs it alone.
    embedded_worker: bool = True
    # training executor: 'local' (subprocess per job) | 'ray' (Ray Jobs API) | 'ssh' (GPU hosts over SSH)
    executor: str = "local"
    # Remote executors (ray, ssh): runners read inputs from and write checkpoints to blob storage, so they
    # get this process's S3 credentials (AWS_*); false when the nodes have their own (an instance role).
    forward_storage_credentials: bool = True
    # Ray executor: the Jobs API (dashboard) address, CPUs each runner asks for, extra runtime_env
    # (merged into each job's: pip, env_vars, …), and the scratch folder on the nodes.
    ray_address: str = "http://127.0.0.1:8265"
    ray_cpus_per_job: float = 1.0
    ray_runtime_env: dict = Field(default_factory=dict)
    ray_scratch_dir: str = "/tmp/tuneyard-runs"
    ray_python: str = "python"  # the interpreter on the nodes that has tuneyard installed
    # SSH executor: the hosts, as JSON: [{"host": "10.0.0.5", "port": 22, "user": "ubuntu",
    # "ssh_key": "<an /v1/ssh_keys id>", "gpus": {"H100-80GB": 8}, "python": "/opt/venv/bin/python"}];
    # "python" is optional: without it a venv with the pinned tuneyard is set up on the host.
    ssh_hosts: list[dict] = Field(default_factory=list)
    ssh_runner_dir: str = ".tuneyard"  # on each host, relative to the login's home: venvs and runs
    ssh_install_spec: str = ""  # what pip installs there; default tuneyard==<this version>
    ssh_connect_timeout_seconds: float = 20.0
    worker_lease_seconds: int = 60
    reward_timeout_seconds: int = 30

    # Deployments (docs/deployments.md). Worker processes that may serve at once on this machine's CPU.
    cpu_deployment_slots: int = 4
    max_active_deployments_per_org: int = 8
    # Where deployment workers run: '' = like training (TUNEYARD_EXECUTOR) | local | ray | ssh. Remote
    # workers (ray, ssh) listen on the node's network on this host address, with a per-launch token.
    deployment_executor: str = ""
    remote_worker_bind_host: str = "0.0.0.0"
    # Engine: auto (vLLM on a GPU when installed, else transformers) | transformers | vllm.
    inference_engine: str = "auto"
    inference_max_batch_size: int = 16
    inference_max_model_len: int = 2048
    inference_default_max_tokens: int = 512
    # torch threads per CPU worker (0 = torch's default: one per core).
    inference_threads: int = 0
    deployment_health_interval_seconds: float = 2.0
    deployment_health_timeout_seconds: float = 10.0
    # Consecutive failed probes that make a serving deployment unhealthy, and how long it may stay
    # unhealthy before its worker is restarted.
    deployment_unhealthy_after: int = 3
    deployment_restart_unhealthy_after_seconds: float = 120.0
    deployment_max_restarts: int = 3
    deployment_start_timeout_seconds: float = 900.0
    # A worker no supervisor has probed for this long exits (its control plane is gone).
    deployment_orphan_timeout_seconds: float = 600.0
    # The request log is written in batches this often, off the request path.
    request_log_flush_seconds: float = 0.25
    # Synth/OpenAI surface (docs/synth-api.md): a model named in /api/v1/chat/completions is served by an
    # on-demand deployment, unloaded after this long without requests; a request for a cold model waits
    # this long for it to load.
    synth_idle_unload_seconds: float = 600.0
    synth_cold_start_timeout_seconds: float = 600.0

    # Worker threads for the API's sync routes (bursts of concurrent writers each hold one on SQLite).
    api_threads: int = 256

    # Billing (docs/billing.md). A JSON rate catalog replacing the bundled data/gpu_rates.json.
    rates_file: Path | None = None
    # USD per hour of one unit of this cluster's own hardware, by GPU type ("cpu" = one CPU job slot),
    # e.g. TUNEYARD_LOCAL_RATES='{"cpu": 0.1, "H100-80GB": 2.0}'; overrides the catalog's "local" section.
    local_rates: dict[str, float] = Field(default_factory=dict)
    # Providers whose machines this cluster's executors run jobs on; a job without a provider goes to
    # the cheapest of these that has a rate for its GPU.
    compute_providers: list[str] = Field(default_factory=lambda: ["local"])
    # Multiplier on metered cost (1.0: charge what the hardware costs).
    billing_markup: float = 1.0
    # Scratch volume each job or deployment holds (model, checkpoints), and what storage costs.
    storage_gb_per_workload: float = 50.0
    storage_usd_per_gb_month: float = 0.10
    # Running work is charged every this many seconds; an organization out of credit is stopped then.
    metering_interval_seconds: float = 60.0
    # The duration model behind job estimates (and the credit held at creation): start-up (provisioning,
    # model load) plus steps x seconds per step, x2 for DPO, x4 for GRPO.
    estimate_startup_seconds: float = 60.0
    estimate_cpu_step_seconds: float = 2.0
    estimate_gpu_step_seconds: float = 0.5
    # Serving held (from the available credit) when a deployment is created: it must afford this long.
    deployment_hold_hours: float = 1.0

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'tuneyard.db'}"

    @property
    def blob_root(self) -> Path:
        return self.data_dir / "blobs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
