"""Models this installation can train from and serve: base models and completed fine-tunes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneyard import modelhub
from tuneyard.store.models import TrainingJob


def base_models() -> list[dict]:
    return modelhub.list_available_models()


def fine_tunes(session: Session, org_id: str) -> list[TrainingJob]:
    return list(session.execute(select(TrainingJob).where(
        TrainingJob.org_id == org_id, TrainingJob.status == "completed",
        TrainingJob.model_deleted_at.is_(None)).order_by(TrainingJob.seq.desc())).scalars())
