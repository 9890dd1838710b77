"""Attempts cut short by a PBX fault: call_attempts.cut_short

Revision ID: 0006_cut_short
Revises: 0005_tiers
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_cut_short"
down_revision = "0005_tiers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "call_attempts", sa.Column("cut_short", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("call_attempts") as batch:
        batch.drop_column("cut_short")
