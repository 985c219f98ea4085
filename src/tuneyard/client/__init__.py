"""A typed Python client for tuneyard's ``/v1`` API (the CLI is built on it)."""

from tuneyard.client.client import Client
from tuneyard.client.deployments import completion_text
from tuneyard.client.errors import (
    APIError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    InsufficientCredit,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TuneyardError,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)
from tuneyard.client.types import (
    ApiKey,
    Balance,
    Dataset,
    Deployment,
    JobEvent,
    JobModel,
    JobProgress,
    Model,
    Page,
    RewardFunction,
    TrainingJob,
    Transaction,
)

__all__ = [
    "APIError", "ApiKey", "BadRequest", "Balance", "Client", "Conflict", "ConnectionFailed", "Dataset", "Deployment",
    "InsufficientCredit", "JobEvent", "JobModel", "JobProgress", "Model", "NotFound", "Page", "PayloadTooLarge",
    "PermissionDenied", "RateLimited", "RewardFunction", "ServerError", "ServiceUnavailable", "TrainingJob",
    "Transaction", "TuneyardError", "Unauthorized", "ValidationError", "WaitTimeout", "completion_text",
]
