"""The AMI server carrying each attempt, for a daemon driving several: call_attempts.server

Revision ID: 0010_attempt_server
Revises: 0002_rules, 0003_ivr, 0009_inbound
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa


revision = "0010_attempt_server"
down_revision = ("0002_rules", "0003_ivr", "0009_inbound")
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: rows from before (and every row of a one-server daemon) mean the first server.
    op.add_column("call_attempts", sa.Column("server", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_attempts") as batch:
        batch.drop_column("server")
