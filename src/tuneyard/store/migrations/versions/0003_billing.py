"""billing: usage records (metered periods), credit holds, a job's estimated cost

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24 10:00:00

Branches off 0001 beside the deployments migration; ``db.migrate`` upgrades to "heads".
"""
from alembic import op
import sqlalchemy as sa
import tuneyard.store.models


revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('usage_records',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('resource_kind', sa.String(length=20), nullable=False),
    sa.Column('resource_id', sa.String(length=40), nullable=False),
    sa.Column('period_start', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period_end', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('gpu_type', sa.String(length=40), nullable=False),
    sa.Column('gpu_count', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=60), nullable=False),
    sa.Column('usd_per_hour', sa.Numeric(precision=18, scale=6), nullable=False),
    sa.Column('amount_usd', sa.Numeric(precision=18, scale=6), nullable=False),
    sa.Column('unbilled_usd', sa.Numeric(precision=18, scale=6), nullable=False),
    sa.Column('tokens', sa.BigInteger(), nullable=False),
    sa.Column('transaction_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('resource_kind', 'resource_id', 'period_start', name='uq_usage_records_period')
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index('ix_usage_records_org_end', ['org_id', 'period_end'], unique=False)
        batch_op.create_index('ix_usage_records_resource', ['resource_kind', 'resource_id'], unique=False)

    op.create_table('credit_holds',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('resource_kind', sa.String(length=20), nullable=False),
    sa.Column('resource_id', sa.String(length=40), nullable=False),
    sa.Column('amount_usd', sa.Numeric(precision=18, scale=6), nullable=False),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('resource_kind', 'resource_id', name='uq_credit_holds_resource')
    )
    with op.batch_alter_table('credit_holds', schema=None) as batch_op:
        batch_op.create_index('ix_credit_holds_org_open', ['org_id', 'released_at'], unique=False)

    with op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('estimated_cost_usd', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.drop_column('estimated_cost_usd')
    with op.batch_alter_table('credit_holds', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_holds_org_open')
    op.drop_table('credit_holds')
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_resource')
        batch_op.drop_index('ix_usage_records_org_end')
    op.drop_table('usage_records')
