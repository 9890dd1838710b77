"""Customer tiers: where a customer's tier came from; each attempt's tier and queue

Revision ID: 0005_tiers
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = "0005_tiers"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("tier_source", sa.String(length=16), nullable=True))
    op.add_column("customers", sa.Column("tier_checked_at", sa.DateTime(), nullable=True))
    op.add_column("call_attempts", sa.Column("tier", sa.String(length=32), nullable=True))
    op.add_column("call_attempts", sa.Column("routed_queue", sa.String(length=64), nullable=True))
    op.add_column("call_attempts", sa.Column("routing", sa.String(length=16), nullable=True))
    op.create_index("ix_leads_customer", "leads", ["customer_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_leads_customer", table_name="leads")
    with op.batch_alter_table("call_attempts") as batch:
        batch.drop_column("routing")
        batch.drop_column("routed_queue")
        batch.drop_column("tier")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("tier_checked_at")
        batch.drop_column("tier_source")
