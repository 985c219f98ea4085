"""synth: a fine-tuned model deleted through DELETE /api/v1/models/{id}

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-24 14:00:00

Branches off 0001 beside the deployments (0002) and billing (0003) migrations; ``db.migrate``
upgrades to "heads".
"""
import sqlalchemy as sa
from alembic import op

import tuneyard.store.models

revision = '0004'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_deleted_at', tuneyard.store.models.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.drop_column('model_deleted_at')
