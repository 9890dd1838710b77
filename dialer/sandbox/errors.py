"""Errors the sandbox raises; callers see only these.

    SandboxError
    ├── SandboxUnavailable   missing tools or not root: cannot run here at all
    └── SandboxStartError    something failed while starting; names the log
"""

from __future__ import annotations


class SandboxError(Exception):
    pass


class SandboxUnavailable(SandboxError):
    pass


class SandboxStartError(SandboxError):
    pass
