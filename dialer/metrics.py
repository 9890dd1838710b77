"""Prometheus metrics of a running daemon, for `/metrics`.

Call counts come from the store at scrape time, so they are exactly what
`dialer report` shows and survive restarts (they only ever grow, as counters
must); everything live (agents, lines, dial level, AMI) is read from the
daemon's view (dialer.control.daemon_view) when scraped. Latencies are histograms fed by two hooks: the
AMI gateway's `on_action` and SQLAlchemy's commit event.

Each daemon has its own registry, so tests can run several in one process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from dialer.core.outcomes import Outcome, abandon_rate, live_answers
from dialer.control.daemon_view import DaemonView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NO_TIER = "none"
AGENT_STATES = ("logged_out", "free", "ringing", "talking", "wrapup", "paused", "busy")


class DaemonMetrics:
    def __init__(self, daemon: DaemonView) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.ami_action_seconds = Histogram(
            "dialer_ami_action_seconds",
            "Time from sending an AMI action to its reply",
            ["action"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.db_write_seconds = Histogram(
            "dialer_db_write_seconds",
            "Time of one database write transaction, begin to commit",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self._collector = _DaemonCollector(daemon)
        self.registry.register(self._collector)

    def observe_ami_action(self, action: str, seconds: float) -> None:
        self.ami_action_seconds.labels(action=action.lower()).observe(seconds)

    def instrument_engine(self, engine: AsyncEngine) -> None:
        def began(conn: Any) -> None:
            conn.info["dialer_began"] = time.perf_counter()

        def committed(conn: Any) -> None:
            started = conn.info.pop("dialer_began", None)
            if started is not None:
                self.db_write_seconds.observe(time.perf_counter() - started)

        event.listen(engine.sync_engine, "begin", began)
        event.listen(engine.sync_engine, "commit", committed)

    async def render(self) -> bytes:
        """The exposition text; reads the call counts from the store first."""
        store = self._collector.daemon.store
        self._collector.counts = await store.outcome_counts() if store is not None else []
        return generate_latest(self.registry)


class _DaemonCollector(Collector):
    def __init__(self, daemon: DaemonView) -> None:
        self.daemon = daemon
        self.counts: list[Any] = []

    def collect(self) -> Iterator[Any]:
        yield from self._calls()
        yield from self._campaigns()
        yield from self._agents()
        yield from self._ami()
        yield from self._trunks()
        yield from self._webhooks()

    def _calls(self) -> Iterator[Any]:
        placed = CounterMetricFamily("dialer_calls_placed", "Calls placed (attempts)", labels=["campaign", "tier"])
        answered = CounterMetricFamily(
            "dialer_calls_answered", "Calls answered by a person and bridged to an agent", labels=["campaign", "tier"]
        )
        abandoned = CounterMetricFamily(
            "dialer_calls_abandoned", "Calls answered by a person with no agent in time", labels=["campaign", "tier"]
        )
        by_outcome = CounterMetricFamily(
            "dialer_calls", "Finished calls by outcome", labels=["campaign", "tier", "outcome"]
        )
        rate = GaugeMetricFamily(
            "dialer_abandon_rate", "Abandoned / live-answered calls, whole campaign (as dialer report)",
            labels=["campaign"],
        )
        totals: dict[tuple[str, str], dict[str | None, int]] = {}
        per_campaign: dict[str, dict[str | None, int]] = {}
        for row in self.counts:
            key = (row.campaign, row.tier or NO_TIER)
            outcomes = totals.setdefault(key, {})
            outcomes[row.outcome] = outcomes.get(row.outcome, 0) + row.count
            campaign = per_campaign.setdefault(row.campaign, {})
            campaign[row.outcome] = campaign.get(row.outcome, 0) + row.count
        for (campaign, tier), outcomes in sorted(totals.items()):
            placed.add_metric([campaign, tier], sum(outcomes.values()))
            answered.add_metric([campaign, tier], outcomes.get("answered", 0))
            abandoned.add_metric([campaign, tier], outcomes.get("abandoned", 0))
            for outcome, count in sorted((o, c) for o, c in outcomes.items() if o is not None):
                by_outcome.add_metric([campaign, tier, outcome], count)
        for campaign, outcomes in sorted(per_campaign.items()):
            campaign_rate = abandon_rate(outcomes.get(Outcome.abandoned, 0), live_answers(outcomes))
            rate.add_metric([campaign], round(campaign_rate, 4))
        yield from (placed, answered, abandoned, by_outcome, rate)

    def _campaigns(self) -> Iterator[Any]:
        daemon = self.daemon
        lines = GaugeMetricFamily("dialer_lines_in_use", "Calls in progress", labels=["campaign"])
        live = GaugeMetricFamily("dialer_calls_live", "Calls in progress by stage", labels=["campaign", "stage"])
        level = GaugeMetricFamily(
            "dialer_dial_level", "Lines in use per agent logged in to the campaign's queue", labels=["campaign"]
        )
        max_lines = GaugeMetricFamily("dialer_max_lines", "The campaign's line limit", labels=["campaign"])
        window_rate = GaugeMetricFamily(
            "dialer_abandon_rate_window", "Abandon rate over the pacing's rolling window", labels=["campaign"]
        )
        state = GaugeMetricFamily("dialer_campaign_state", "1 for the campaign's current state", labels=["campaign", "state"])
        now = daemon.clock()
        for name, runner in sorted(daemon.runners.items()):
            counts = runner.live_counts()
            lines.add_metric([name], counts.lines)
            for stage in ("ringing", "waiting", "talking"):
                live.add_metric([name, stage], getattr(counts, stage))
            agents = len(daemon.agents_in_queue(runner.campaign.queue))
            level.add_metric([name], counts.lines / agents if agents else 0.0)
            max_lines.add_metric([name], runner.campaign.dialing.max_lines)
            window = runner.abandon_window.state(now, runner.campaign.dialing.abandon_limit)
            window_rate.add_metric([name], window.rate)
        for name in daemon.known_campaigns():
            state.add_metric([name, daemon.campaign_state(name).value], 1)
        issues = GaugeMetricFamily("dialer_config_issues", "Problems in campaign files (last good version runs)")
        issues.add_metric([], len(daemon.config_issues()))
        yield from (lines, live, level, max_lines, window_rate, state, issues)

    def _agents(self) -> Iterator[Any]:
        agents = GaugeMetricFamily("dialer_agents", "Agents by state", labels=["state"])
        labels = [a.label for a in self.daemon.agents()]
        for label in sorted(set(AGENT_STATES) | set(labels)):
            agents.add_metric([label], labels.count(label))
        yield agents

    def _ami(self) -> Iterator[Any]:
        connected = GaugeMetricFamily("dialer_ami_connected", "1 while logged in to AMI (any server, with several)")
        connected.add_metric([], 1 if self.daemon.ami_connected else 0)
        reconnects = CounterMetricFamily("dialer_ami_reconnects", "AMI connections lost and made again")
        reconnects.add_metric([], self.daemon.ami_reconnects)
        yield from (connected, reconnects)
        # Server names are operator input (the config allows [A-Za-z0-9_.-]); prometheus_client
        # escapes label values (\\, \", newline) besides.
        up = GaugeMetricFamily(
            "dialer_ami_server_up", "1 while the AMI server is logged in, booted and not shutting down",
            labels=["server"],
        )
        since = GaugeMetricFamily(
            "dialer_ami_server_state_since_timestamp_seconds", "When the server's up/down state last changed",
            labels=["server"],
        )
        calls = GaugeMetricFamily("dialer_ami_server_calls", "Calls in progress on the AMI server", labels=["server"])
        max_lines = GaugeMetricFamily(
            "dialer_ami_server_max_lines", "The AMI server's line limit (absent: none)", labels=["server"]
        )
        for server in self.daemon.ami_servers:
            up.add_metric([server.name], 1 if server.can_dial else 0)
            since.add_metric([server.name], server.since)
            calls.add_metric([server.name], server.calls)
            if server.max_lines is not None:
                max_lines.add_metric([server.name], server.max_lines)
        yield from (up, since, calls, max_lines)

    def _trunks(self) -> Iterator[Any]:
        backed_off = GaugeMetricFamily(
            "dialer_trunk_backed_off",
            "1 while Originates to the trunk are held after repeated refusals",
            labels=["trunk"],
        )
        refusals = CounterMetricFamily(
            "dialer_trunk_refusals",
            "Originates Asterisk refused on the trunk (since the daemon started)",
            labels=["trunk"],
        )
        cps = GaugeMetricFamily("dialer_trunk_calls_per_second", "The trunk's calls-per-second limit", labels=["trunk"])
        for trunk in self.daemon.trunk_views():
            backed_off.add_metric([trunk.name], 1 if trunk.backed_off else 0)
            refusals.add_metric([trunk.name], trunk.refusals)
            cps.add_metric([trunk.name], trunk.calls_per_second)
        yield from (backed_off, refusals, cps)

    def _webhooks(self) -> Iterator[Any]:
        dispatcher = self.daemon.webhooks
        if dispatcher is None:
            return
        labels = ["campaign", "webhook"]
        families = (
            (CounterMetricFamily("dialer_webhook_delivered", "Webhook deliveries a receiver took (2xx), since start",
                                 labels=labels), dispatcher.delivered),
            (CounterMetricFamily("dialer_webhook_failed_tries", "Webhook tries that failed, since start",
                                 labels=labels), dispatcher.failed_tries),
            (CounterMetricFamily("dialer_webhook_dead_letters", "Webhook deliveries given up on, since start",
                                 labels=labels), dispatcher.dead),
        )
        for family, counts in families:
            for (campaign, webhook), count in sorted(counts.items()):
                family.add_metric([campaign, webhook], count)
            yield family
        in_flight = GaugeMetricFamily("dialer_webhook_in_flight", "Webhook tries under way")
        in_flight.add_metric([], dispatcher.in_flight)
        yield in_flight
