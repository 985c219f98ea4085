"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 09:22:14.692227
"""
from alembic import op
import sqlalchemy as sa
import tuneyard.store.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('organizations',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('plan', sa.String(length=40), nullable=False),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('api_keys',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('key_prefix', sa.String(length=20), nullable=False),
    sa.Column('deployment_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_org_id'), ['org_id'], unique=False)

    op.create_table('credit_transactions',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('amount_usd', sa.Numeric(precision=18, scale=6), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('reference', sa.String(length=60), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('credit_transactions', schema=None) as batch_op:
        batch_op.create_index('ix_credit_transactions_org_seq', ['org_id', 'seq'], unique=False)

    op.create_table('datasets',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('format', sa.String(length=40), nullable=False),
    sa.Column('num_rows', sa.Integer(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('blob_key', sa.String(length=300), nullable=False),
    sa.Column('filename', sa.String(length=300), nullable=True),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('source_type', sa.String(length=20), nullable=False),
    sa.Column('source_uri', sa.Text(), nullable=True),
    sa.Column('source_config', sa.JSON(), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=True),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.create_index('ix_datasets_org_seq', ['org_id', 'seq'], unique=False)

    op.create_table('reward_functions',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('entrypoint', sa.String(length=200), nullable=False),
    sa.Column('filename', sa.String(length=300), nullable=True),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('blob_key', sa.String(length=300), nullable=False),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('reward_functions', schema=None) as batch_op:
        batch_op.create_index('ix_reward_functions_org_seq', ['org_id', 'seq'], unique=False)

    op.create_table('ssh_keys',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=60), nullable=True),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=120), nullable=False),
    sa.Column('key_type', sa.String(length=40), nullable=False),
    sa.Column('private_key_encrypted', sa.Text(), nullable=False),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('ssh_keys', schema=None) as batch_op:
        batch_op.create_index('ix_ssh_keys_org_seq', ['org_id', 'seq'], unique=False)

    op.create_table('training_jobs',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('base_model', sa.String(length=300), nullable=False),
    sa.Column('dataset_id', sa.String(length=40), nullable=False),
    sa.Column('validation_dataset_id', sa.String(length=40), nullable=True),
    sa.Column('reward_function_ids', sa.JSON(), nullable=False),
    sa.Column('reward_weights', sa.JSON(), nullable=True),
    sa.Column('output_name', sa.String(length=300), nullable=False),
    sa.Column('hyperparameters', sa.JSON(), nullable=False),
    sa.Column('gpu_type', sa.String(length=40), nullable=False),
    sa.Column('gpu_count', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=60), nullable=False),
    sa.Column('checkpoint_destination', sa.JSON(), nullable=True),
    sa.Column('requires_heartbeat', sa.Boolean(), nullable=False),
    sa.Column('last_heartbeat_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resume_from', sa.String(length=300), nullable=True),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('suffix', sa.String(length=120), nullable=True),
    sa.Column('current_step', sa.Integer(), nullable=False),
    sa.Column('total_steps', sa.Integer(), nullable=True),
    sa.Column('current_loss', sa.Float(), nullable=True),
    sa.Column('trained_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('error_code', sa.String(length=80), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('worker_id', sa.String(length=120), nullable=True),
    sa.Column('lease_expires_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('executor', sa.String(length=20), nullable=True),
    sa.Column('executor_handle', sa.JSON(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('provisioning_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_training_jobs_org_seq', ['org_id', 'seq'], unique=False)
        batch_op.create_index('ix_training_jobs_status', ['status'], unique=False)

    op.create_table('checkpoints',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.Column('blob_prefix', sa.String(length=300), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('local_path', sa.Text(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['training_jobs.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id')
    )
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkpoints_job_id'), ['job_id'], unique=False)

    op.create_table('job_events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('seq_in_job', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['training_jobs.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('job_id', 'seq_in_job')
    )
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_events_job_id'), ['job_id'], unique=False)

    op.create_table('job_log_lines',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', tuneyard.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['training_jobs.id'], ),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('job_id', 'line_no')
    )
    with op.batch_alter_table('job_log_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_log_lines_job_id'), ['job_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('job_log_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_log_lines_job_id'))

    op.drop_table('job_log_lines')
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_events_job_id'))

    op.drop_table('job_events')
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoints_job_id'))

    op.drop_table('checkpoints')
    with op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_training_jobs_status')
        batch_op.drop_index('ix_training_jobs_org_seq')

    op.drop_table('training_jobs')
    with op.batch_alter_table('ssh_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_ssh_keys_org_seq')

    op.drop_table('ssh_keys')
    with op.batch_alter_table('reward_functions', schema=None) as batch_op:
        batch_op.drop_index('ix_reward_functions_org_seq')

    op.drop_table('reward_functions')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_index('ix_datasets_org_seq')

    op.drop_table('datasets')
    with op.batch_alter_table('credit_transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_transactions_org_seq')

    op.drop_table('credit_transactions')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_org_id'))

    op.drop_table('api_keys')
    op.drop_table('organizations')
