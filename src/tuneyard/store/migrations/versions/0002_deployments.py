"""deployments: deployments, their events, and per-request logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 12:00:00

Branches off 0001 beside the billing migration (0003); ``db.migrate`` upgrades to "heads".
"""
from alembic import op
import sqlalchemy as sa
import tuneyard.store.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deployments',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('model', sa.String(length=300), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('base_model', sa.String(length=300), nullable=False),
    sa.Column('training_job_id', sa.String(length=40), nullable=True),
    sa.Column('checkpoint_id', sa.String(length=40), nullable=True),
    sa.Column('adapter', sa.Boolean(), nullable=False),
    sa.Column('engine', sa.String(length=20), nullable=False),
    sa.Column('gpu_type', sa.String(length=40), nullable=False),
    sa.Column('gpu_count', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=60), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('error_code', sa.String(length=80), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('worker_id', sa.String(length=120), nullable=True),
    sa.Column('lease_expires_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('worker_handle', sa.JSON(), nullable=True),
    sa.Column('worker_url', sa.String(length=300), nullable=True),
    sa.Column('restarts', sa.Integer(), nullable=False),
    sa.Column('health', sa.JSON(), nullable=True),
    sa.Column('health_checked_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('health_failures', sa.Integer(), nullable=False),
    sa.Column('total_requests', sa.BigInteger(), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), nullable=False),
    sa.Column('serving_seconds', sa.Float(), nullable=False),
    sa.Column('accounted_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cost_per_hour_usd', sa.Float(), nullable=False),
    sa.Column('total_cost_usd', sa.Float(), nullable=False),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('provisioning_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('stopped_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index('ix_deployments_org_seq', ['org_id', 'seq'], unique=False)
        batch_op.create_index('ix_deployments_status', ['status'], unique=False)

    op.create_table('deployment_events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('deployment_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('deployment_events', schema=None) as batch_op:
        batch_op.create_index('ix_deployment_events_dep_seq', ['deployment_id', 'seq'], unique=False)

    op.create_table('deployment_requests',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('deployment_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('ttft_ms', sa.Float(), nullable=True),
    sa.Column('tpot_ms', sa.Float(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('streamed', sa.Boolean(), nullable=False),
    sa.Column('finish_reason', sa.String(length=40), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('client_disconnected', sa.Boolean(), nullable=False),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('deployment_requests', schema=None) as batch_op:
        batch_op.create_index('ix_deployment_requests_dep_created', ['deployment_id', 'created_at'], unique=False)
        batch_op.create_index('ix_deployment_requests_dep_seq', ['deployment_id', 'seq'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deployment_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_deployment_requests_dep_seq')
        batch_op.drop_index('ix_deployment_requests_dep_created')

    op.drop_table('deployment_requests')
    with op.batch_alter_table('deployment_events', schema=None) as batch_op:
        batch_op.drop_index('ix_deployment_events_dep_seq')

    op.drop_table('deployment_events')
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index('ix_deployments_status')
        batch_op.drop_index('ix_deployments_org_seq')

    op.drop_table('deployments')
