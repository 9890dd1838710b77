"""IVR surveys: answers and results; AMD verdict on attempts

Revision ID: 0003_ivr
Revises: 0001
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_ivr"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "survey_results",
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["attempt_id"], ["call_attempts.id"]),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.PrimaryKeyConstraint("attempt_id"),
    )
    op.create_index("ix_survey_results_campaign", "survey_results", ["campaign_id"], unique=False)
    op.create_table(
        "survey_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("question", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("digits", sa.String(length=32), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["call_attempts.id"]),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("attempt_id", "seq", name="uq_survey_answers_attempt_seq"),
    )
    op.create_index("ix_survey_answers_campaign", "survey_answers", ["campaign_id", "question"], unique=False)
    op.add_column("call_attempts", sa.Column("amd_status", sa.String(length=16), nullable=True))
    op.add_column("call_attempts", sa.Column("amd_cause", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_attempts") as batch:
        batch.drop_column("amd_cause")
        batch.drop_column("amd_status")
    op.drop_index("ix_survey_answers_campaign", table_name="survey_answers")
    op.drop_table("survey_answers")
    op.drop_index("ix_survey_results_campaign", table_name="survey_results")
    op.drop_table("survey_results")
