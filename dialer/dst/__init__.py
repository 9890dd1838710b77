"""Deterministic simulation testing of the whole daemon.

The real daemon (Daemon, CampaignRunner, the SQLite store, lead intake,
reconciliation, the campaign watcher) runs on a virtual clock against a
simulated Asterisk, with seeded faults; invariants are checked after every
step and a seed replays exactly (`dialer dst --replay SEED`).
"""
