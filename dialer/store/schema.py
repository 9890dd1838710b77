"""The database schema (SQLAlchemy Core tables).

Times are stored as naive UTC datetimes. Every change to these tables needs a
migration in `dialer/store/migrations/versions/`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("phone", String(32), nullable=False, unique=True),
    Column("external_id", String(64)),
    Column("name", String(200)),
    Column("tier", String(32)),
    Column("value", Float),
    Column("timezone", String(64)),
    Column("created_at", DateTime, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("type", String(32), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# Lead states: pending (may be dialed from next_attempt_at on), leased (an
# attempt row exists and the Originate may have left), done (final_outcome says why).
leads = Table(
    "leads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime),
    Column("lease_attempt_id", String(64)),
    Column("final_outcome", String(32)),
    Column("data", JSON, nullable=False, default=dict),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("campaign_id", "customer_id", name="uq_leads_campaign_customer"),
)
Index("ix_leads_due", leads.c.campaign_id, leads.c.state, leads.c.next_attempt_at)

# One row per Originate. Written (state "dialing") before the Originate is sent.
call_attempts = Table(
    "call_attempts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("outcome", String(32)),
    Column("hangup_cause", Integer),
    Column("hangup_cause_text", String(64)),
    Column("originate_reason", Integer),
    Column("agent_id", String(64)),
    Column("channel", String(128)),
    Column("uniqueid", String(64)),
    Column("dialed_at", DateTime, nullable=False),
    Column("ringing_at", DateTime),
    Column("answered_at", DateTime),
    Column("bridged_at", DateTime),
    Column("ended_at", DateTime),
    Column("abandoned", Boolean, nullable=False, default=False),
)
Index("ix_call_attempts_campaign", call_attempts.c.campaign_id, call_attempts.c.ended_at)
Index("ix_call_attempts_lead", call_attempts.c.lead_id)

agents = Table(
    "agents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200)),
    Column("interface", String(128), nullable=False),
    Column("state", String(32), nullable=False),
    Column("state_changed_at", DateTime, nullable=False),
)
