"""The one error a daemon's start ends with: its message says why, for the operator."""


class StartupError(Exception):
    """The daemon cannot start (database, AMI login, HTTP port or token); the message says why."""
