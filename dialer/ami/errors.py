"""AMI errors, translated at the boundary so callers never see panoramisk's types.

    AmiError
    ├── AmiNotConnected   no logged-in connection right now
    │   └── AmiNotBooted  Asterisk took the login but has not loaded its modules yet
    ├── AmiLoginFailed    Asterisk refused the username/secret
    ├── AmiTimeout        an action got no reply in time (its fate is unknown)
    └── AmiActionFailed   Asterisk answered with Error
        └── AmiUnsafeValue  refused before sending: a header would break AMI's framing
                            (CR, LF, NUL...); nothing was written, as after an Error reply
"""


class AmiError(Exception):
    pass


class AmiNotConnected(AmiError):
    pass


class AmiNotBooted(AmiNotConnected):
    pass


class AmiLoginFailed(AmiError):
    pass


class AmiTimeout(AmiError):
    pass


class AmiActionFailed(AmiError):
    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message


class AmiUnsafeValue(AmiActionFailed):
    """An action the gateway would not write (see `dialer.ami.values`): Asterisk never saw it."""

    def __init__(self, action: str, problems: list[str]) -> None:
        super().__init__(action, "refused before sending: " + "; ".join(problems))
        self.problems = problems
