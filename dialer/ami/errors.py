"""AMI errors, translated at the boundary so callers never see panoramisk's types.

    AmiError
    ├── AmiNotConnected   no logged-in connection right now
    ├── AmiLoginFailed    Asterisk refused the username/secret
    ├── AmiTimeout        an action got no reply in time (its fate is unknown)
    └── AmiActionFailed   Asterisk answered with Error
"""


class AmiError(Exception):
    pass


class AmiNotConnected(AmiError):
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
