"""Prefixed random ids (``ds_…``, ``job_…``) as the seed uses them."""

import secrets

PREFIXES = {
    "org": "org_",
    "api_key": "key_",
    "dataset": "ds_",
    "reward_function": "rf_",
    "ssh_key": "sk_",
    "training_job": "job_",
    "deployment": "dep_",
    "transaction": "txn_",
    "request": "req_",
    "checkpoint": "ckpt_",
    "event": "evt_",
    "usage": "use_",
    "hold": "hold_",
}


def new_id(kind: str) -> str:
    """A prefixed id with 96 random bits; sortable order comes from ``seq`` columns, not ids."""
    return PREFIXES[kind] + secrets.token_hex(12)
