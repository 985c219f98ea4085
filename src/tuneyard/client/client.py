"""The entry point: ``Client(url, api_key)`` with one attribute per resource group."""

from __future__ import annotations

from tuneyard.client import config as _config
from tuneyard.client.account import Account, ApiKeys, Billing, Cost, Models
from tuneyard.client.datasets import Datasets, RewardFunctions
from tuneyard.client.deployments import Deployments
from tuneyard.client.jobs import TrainingJobs
from tuneyard.client.transport import Transport
from tuneyard.client.types import Me


class Client:
    """A tuneyard API client.

    With no arguments it uses ``TUNEYARD_URL`` / ``TUNEYARD_API_KEY``, then the file written by
    ``tuneyard login``, then ``http://127.0.0.1:8000``. ``url`` is the server root (a trailing
    ``/v1`` is accepted and dropped).

        with Client() as c:
            ds = c.datasets.upload("train.jsonl")
            job = c.training_jobs.create("HuggingFaceTB/SmolLM2-135M-Instruct", ds.id, method="sft")
            job = c.training_jobs.wait(job.id, on_progress=print)
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 3, backoff: float = 0.5, event_hooks: dict | None = None):
        cfg = _config.resolve(url, api_key)
        self.url = cfg.url
        self.api_key = cfg.api_key
        self.config = cfg
        self._transport = Transport(cfg.url, cfg.api_key, timeout=timeout, max_retries=max_retries,
                                    backoff=backoff, event_hooks=event_hooks)
        t = self._transport
        self.datasets = Datasets(t)
        self.reward_functions = RewardFunctions(t)
        self.training_jobs = TrainingJobs(t)
        self.deployments = Deployments(t)
        self.cost = Cost(t)
        self.billing = Billing(t)
        self.api_keys = ApiKeys(t)
        self.models = Models(t)
        self._account = Account(t)

    # Short aliases.
    @property
    def jobs(self) -> TrainingJobs:
        return self.training_jobs

    @property
    def rewards(self) -> RewardFunctions:
        return self.reward_functions

    def me(self) -> Me:
        return self._account.me()

    def health(self) -> dict:
        """``GET /health`` (no key needed): ``{"status": "ok", "version": ...}``."""
        return self._transport.json("GET", "/health")

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"
