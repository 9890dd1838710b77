"""This daemon's side of the campaign leases when several daemons share one database.

Every heartbeat the daemon claims or renews the lease of each campaign it runs
(`dialer.store.campaign_owners`); the database lets one daemon hold each. A
campaign gained (at start, or taken over from a daemon whose heartbeat
stopped) is not dialed until its open calls have been reconciled with the
PBX channels: calls still up are adopted, the others closed by the retry
rules, so no number whose call may still be up is dialed again.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from datetime import UTC, datetime

import structlog

from dialer.core.ownership import LeaseTerms, may_dial
from dialer.store import campaign_owners
from dialer.store.store import Store

log = structlog.get_logger("dialer.leases")


def default_daemon_id() -> str:
    # The random part: a restarted daemon with the same pid (a container) is still another daemon.
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _dt(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC).replace(tzinfo=None)


class CampaignLeases:
    def __init__(self, store: Store, me: str, terms: LeaseTerms) -> None:
        self.store = store
        self.me = me
        self.terms = terms
        self._held_until: dict[int, datetime] = {}
        self._unreconciled: set[int] = set()
        self._next_beat = 0.0

    def holds(self, campaign_id: int) -> bool:
        """Whether this daemon holds the campaign's lease (its calls are this daemon's to judge)."""
        return campaign_id in self._held_until

    def may_dial(self, campaign_id: int, now: float) -> bool:
        return campaign_id not in self._unreconciled and may_dial(self._held_until.get(campaign_id), _dt(now), self.terms)

    def unreconciled(self) -> list[int]:
        """Campaigns gained whose open calls are still to be reconciled before they are dialed."""
        return sorted(self._unreconciled)

    def reconciled(self, campaign_id: int) -> None:
        self._unreconciled.discard(campaign_id)

    async def beat(self, campaign_ids: Iterable[int], now: float) -> list[int]:
        """Claim or renew each campaign's lease when a heartbeat is due; returns the campaigns lost."""
        if now < self._next_beat:
            return []
        self._next_beat = now + self.terms.heartbeat
        lost = []
        for campaign_id in campaign_ids:
            try:
                claim = await campaign_owners.claim(self.store, campaign_id, self.me, _dt(now), self.terms)
            except Exception:
                # The lease kept runs out by itself; may_dial stops the dialing a heartbeat before.
                log.exception("lease.renew_failed", campaign_id=campaign_id)
                continue
            if claim.held:
                assert claim.holder is not None
                if campaign_id not in self._held_until:
                    self._unreconciled.add(campaign_id)
                    log.info("lease.gained", campaign_id=campaign_id, daemon=self.me, taken_from=claim.taken_from)
                self._held_until[campaign_id] = claim.holder.expires_at
            elif campaign_id in self._held_until:
                del self._held_until[campaign_id]
                self._unreconciled.discard(campaign_id)
                lost.append(campaign_id)
                log.warning(
                    "lease.lost", campaign_id=campaign_id, daemon=self.me,
                    owner=claim.holder.owner if claim.holder else None,
                )
        return lost

    async def release_all(self) -> None:
        for campaign_id in list(self._held_until):
            try:
                await campaign_owners.release(self.store, campaign_id, self.me)
            except Exception:
                log.exception("lease.release_failed", campaign_id=campaign_id)  # it expires by itself
            del self._held_until[campaign_id]
