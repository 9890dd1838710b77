"""Inbound callbacks: inbound_calls

Revision ID: 0009_inbound
Revises: 0008_webhooks
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa


revision = "0009_inbound"
down_revision = "0008_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_calls",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("did", sa.String(length=32), nullable=True),
        sa.Column("caller", sa.String(length=32), nullable=True),
        sa.Column("caller_raw", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("answers_attempt", sa.String(length=64), nullable=True),
        sa.Column("answers_outcome", sa.String(length=32), nullable=True),
        sa.Column("tier", sa.String(length=32), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("routing", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("callback_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("bridged_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"]),
        sa.ForeignKeyConstraint(["answers_attempt"], ["call_attempts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_inbound_calls_campaign", "inbound_calls", ["campaign_id", "started_at"], unique=False)
    op.create_index("ix_inbound_calls_uniqueid", "inbound_calls", ["uniqueid"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inbound_calls_uniqueid", table_name="inbound_calls")
    op.drop_index("ix_inbound_calls_campaign", table_name="inbound_calls")
    op.drop_table("inbound_calls")
