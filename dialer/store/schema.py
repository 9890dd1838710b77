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
    Text,
    UniqueConstraint,
    false,
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
    # Campaign rules (migration 0002_rules): lease order (higher first), why a
    # done lead is done, and the callback it is due for.
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("final_reason", String(64)),
    Column("callback_id", Integer),
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
    Column("disposition", String(32)),
    Column("disposition_at", DateTime),
    Column("disposition_agent", String(64)),
    # The AMI server carrying the call when the daemon drives several; NULL: the first one.
    Column("server", String(64)),
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

# Do-not-call numbers (E.164 or as leads hold them). scope is "*" for the
# global list, else a campaign name.
GLOBAL_DNC = "*"
dnc_numbers = Table(
    "dnc_numbers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("phone", String(32), nullable=False),
    Column("scope", String(64), nullable=False),
    Column("source", String(64)),
    Column("added_at", DateTime, nullable=False),
    UniqueConstraint("phone", "scope", name="uq_dnc_phone_scope"),
)

# A call a customer asked for at a time; states: scheduled, dialing, done, cancelled.
callbacks = Table(
    "callbacks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("lead_id", Integer, ForeignKey("leads.id"), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("agent_id", String(64)),
    Column("due_at", DateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("requested_by_attempt", String(64)),
    Column("attempt_id", String(64)),
    Column("created_at", DateTime, nullable=False),
    Column("done_at", DateTime),
)
Index("ix_callbacks_due", callbacks.c.state, callbacks.c.due_at)

# Customer events imported for revisit campaigns (complaint closed, new customer, ...).
customer_events = Table(
    "customer_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_key", String(128), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("lead_id", Integer, ForeignKey("leads.id")),
    Column("imported_at", DateTime, nullable=False),
)

# IVR surveys (migration 0003_ivr). One row per survey call: status is completed,
# transferred, opted_out or partial (hung up before the end; the answers given stay).
survey_results = Table(
    "survey_results",
    metadata,
    Column("attempt_id", String(64), ForeignKey("call_attempts.id"), primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("flow", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
)
Index("ix_survey_results_campaign", survey_results.c.campaign_id)

# One row per question answered (or given up on: status timeout / invalid, value NULL),
# in the order asked.
survey_answers = Table(
    "survey_answers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("attempt_id", String(64), ForeignKey("call_attempts.id"), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("question", String(64), nullable=False),
    Column("value", String(32)),
    Column("status", String(16), nullable=False),
    Column("tries", Integer, nullable=False),
    Column("digits", String(32), nullable=False, default=""),
    Column("answered_at", DateTime, nullable=False),
    UniqueConstraint("attempt_id", "seq", name="uq_survey_answers_attempt_seq"),
)
Index("ix_survey_answers_campaign", survey_answers.c.campaign_id, survey_answers.c.question)

# Answering-machine detection's verdict on an answered call (HUMAN, MACHINE, NOTSURE)
# and Asterisk's AMDCAUSE, e.g. LONGGREETING-2000-1500; the columns belong to
# call_attempts above and are added by migration 0003_ivr.
call_attempts.append_column(Column("amd_status", String(16)))
call_attempts.append_column(Column("amd_cause", String(64)))

# Customer tiers (migration 0005_tiers): where the stored tier came from (column,
# value, crm) and when the CRM last confirmed it; each attempt's tier at dial
# time, the queue it was routed to and why (dedicated, dedicated_away, ...).
customers.append_column(Column("tier_source", String(16)))
customers.append_column(Column("tier_checked_at", DateTime))
call_attempts.append_column(Column("tier", String(32)))
call_attempts.append_column(Column("routed_queue", String(64)))
call_attempts.append_column(Column("routing", String(16)))
# Contact history across campaigns is read by customer.
Index("ix_leads_customer", leads.c.customer_id)

# A PBX fault (Asterisk restart, AMI lost with the call up) ended the call after the
# customer answered (migration 0006_cut_short): the lead is due again, not closed.
call_attempts.append_column(Column("cut_short", Boolean, nullable=False, default=False, server_default=false()))

# Disposition webhooks (migration 0008_webhooks): what the agent wrote with the disposition,
# and the outbox. One outbox row per disposition and endpoint, written in the disposition's
# own transaction (dialer.dispositions) so that none is lost; `body` is the exact JSON sent
# on every try, `event_id` the disposition's id the receiver deduplicates by. States:
# dialer.core.webhook_delivery.OutboxState.
call_attempts.append_column(Column("disposition_notes", Text))
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("attempt_id", String(64), ForeignKey("call_attempts.id"), nullable=False),
    Column("webhook", String(64), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("secret_source", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("tries", Integer, nullable=False, server_default="0"),
    Column("failed_tries", Integer, nullable=False, server_default="0"),
    Column("next_try_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("last_try_at", DateTime),
    Column("delivered_at", DateTime),
    Column("last_status", Integer),
    Column("last_error", String(300)),
    UniqueConstraint("event_id", "webhook", name="uq_webhook_outbox_event_webhook"),
)
Index("ix_webhook_outbox_due", webhook_outbox.c.state, webhook_outbox.c.next_try_at)
Index("ix_webhook_outbox_campaign", webhook_outbox.c.campaign_id, webhook_outbox.c.state)

# Customers calling a campaign's number back (migration 0009_inbound). One row per
# inbound call the dialplan asked the daemon about: the caller as the carrier sent it
# (cleaned) and as recognised, the lead and the attempt it answers (the last one that
# did not reach the customer: abandoned, missed...), where it was routed and why,
# the agent who took it and how it ended: answered, no_agent, callback_requested,
# hung_up (before any agent), or open while the call is up.
inbound_calls = Table(
    "inbound_calls",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("uniqueid", String(64), nullable=False),
    Column("campaign_id", Integer, ForeignKey("campaigns.id")),
    Column("did", String(32)),
    Column("caller", String(32)),
    Column("caller_raw", String(64)),
    Column("customer_id", Integer, ForeignKey("customers.id")),
    Column("lead_id", Integer, ForeignKey("leads.id")),
    Column("answers_attempt", String(64), ForeignKey("call_attempts.id")),
    Column("answers_outcome", String(32)),
    Column("tier", String(32)),
    Column("queue", String(64), nullable=False),
    Column("routing", String(16), nullable=False),
    Column("agent_id", String(64)),
    Column("outcome", String(32)),
    Column("callback_id", Integer),
    Column("started_at", DateTime, nullable=False),
    Column("bridged_at", DateTime),
    Column("ended_at", DateTime),
)
Index("ix_inbound_calls_campaign", inbound_calls.c.campaign_id, inbound_calls.c.started_at)
Index("ix_inbound_calls_uniqueid", inbound_calls.c.uniqueid)

# Several daemons on one database: the daemon dialing each campaign now (`owner`,
# dialer.core.ownership), its last renewal and when its lease runs out unless renewed.
campaign_owners = Table(
    "campaign_owners",
    metadata,
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("heartbeat_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)
