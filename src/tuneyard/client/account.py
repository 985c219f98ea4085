"""Cost, billing, API keys, models and ``/v1/me``."""

from __future__ import annotations

from typing import Any

from tuneyard.client._base import ResourceGroup
from tuneyard.client.types import ApiKey, Balance, Me, Model, Page, Transaction


class Cost(ResourceGroup):
    """``/v1/cost/*``: the server's answers are passed through as dicts (no ``gpu_type`` = this machine's)."""

    def estimate(self, gpu_type: str | None = None, gpu_count: int = 1, duration_minutes: float = 60, *,
                 provider: str | None = None, markup: float | None = None) -> dict:
        return self._t.json("GET", "/v1/cost/estimate", params={
            "gpu_type": gpu_type, "gpu_count": gpu_count, "duration_minutes": duration_minutes,
            "provider": provider, "markup": markup})

    def compare(self, gpu_type: str | None = None, gpu_count: int = 1, duration_minutes: float = 60) -> dict:
        return self._t.json("GET", "/v1/cost/compare", params={
            "gpu_type": gpu_type, "gpu_count": gpu_count, "duration_minutes": duration_minutes})

    def summary(self, days: int = 30) -> dict:
        return self._t.json("GET", "/v1/cost/summary", params={"days": days})

    def rates(self) -> dict:
        return self._t.json("GET", "/v1/cost/rates")

    def by_provider(self, days: int | None = None) -> dict:
        return self._t.json("GET", "/v1/cost/by_provider", params={"days": days})

    def by_gpu(self, days: int | None = None) -> dict:
        return self._t.json("GET", "/v1/cost/by_gpu", params={"days": days})

    def monthly_projection(self) -> dict:
        return self._t.json("GET", "/v1/cost/monthly_projection")


class Billing(ResourceGroup):
    def balance(self) -> Balance:
        return Balance.model_validate(self._t.json("GET", "/v1/billing/balance"))

    def transactions(self, *, limit: int = 20, after: str | None = None) -> Page[Transaction]:
        return self._list("/v1/billing/transactions", Transaction, limit=limit, after=after)

    def burn_rate(self) -> dict:
        return self._t.json("GET", "/v1/billing/burn_rate")

    def check_balance(self, **body: Any) -> dict:
        return self._t.json("POST", "/v1/billing/check_balance", json=body, idempotent=True)


class ApiKeys(ResourceGroup):
    def create(self, name: str = "default", *, deployment_id: str | None = None,
               expires_in_seconds: int | None = None) -> ApiKey:
        """A new key; its plaintext is in ``.key`` and is never shown again."""
        body = {"name": name, "deployment_id": deployment_id, "expires_in_seconds": expires_in_seconds}
        return ApiKey.model_validate(self._t.json("POST", "/v1/api_keys",
                                                  json={k: v for k, v in body.items() if v is not None}))

    def list(self, *, limit: int = 20, after: str | None = None) -> Page[ApiKey]:
        return self._list("/v1/api_keys", ApiKey, limit=limit, after=after)

    def revoke(self, key_id: str) -> ApiKey:
        return ApiKey.model_validate(self._t.json("DELETE", f"/v1/api_keys/{key_id}"))


class Models(ResourceGroup):
    def list(self) -> Page[Model]:
        return self._list("/v1/models", Model, limit=None)


class Account(ResourceGroup):
    def me(self) -> Me:
        return Me.model_validate(self._t.json("GET", "/v1/me"))
