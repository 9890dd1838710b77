"""Chaos run against the real sandbox (issue 11's "Must show").

A campaign of several hundred leads runs while a seeded driver kills and restarts
the daemon, cuts or stalls its AMI link (through `ami_proxy`), restarts Asterisk,
drops, edits and removes campaign files and throws hostile requests at the API.
The verdict comes from the PBX side: the SIPp carrier's and agent phones' own
timestamped event logs, and the database after a clean stop and a last reconcile
(`invariants`). Used by tests/integration/test_chaos.py (3 minutes) and
benchmarks/chaos.py (as long as asked).
"""
