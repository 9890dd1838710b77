"""Disposition webhooks: call_attempts.disposition_notes and the webhook_outbox table

Revision ID: 0008_webhooks
Revises: 0006_cut_short
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa


revision = "0008_webhooks"
down_revision = "0006_cut_short"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("call_attempts", sa.Column("disposition_notes", sa.Text(), nullable=True))
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("attempt_id", sa.String(length=64), sa.ForeignKey("call_attempts.id"), nullable=False),
        sa.Column("webhook", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret_source", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed_tries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_try_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_try_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.UniqueConstraint("event_id", "webhook", name="uq_webhook_outbox_event_webhook"),
    )
    op.create_index("ix_webhook_outbox_due", "webhook_outbox", ["state", "next_try_at"])
    op.create_index("ix_webhook_outbox_campaign", "webhook_outbox", ["campaign_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_webhook_outbox_campaign", table_name="webhook_outbox")
    op.drop_index("ix_webhook_outbox_due", table_name="webhook_outbox")
    op.drop_table("webhook_outbox")
    with op.batch_alter_table("call_attempts") as batch:
        batch.drop_column("disposition_notes")
