"""One exception tree. Every error names the resource it is about and chains its cause."""

from __future__ import annotations


class FeedbotError(Exception):
    """Root of every error feedbot raises on purpose."""

    def __init__(self, message: str, *, resource: str | None = None) -> None:
        self.message = message
        self.resource = resource
        super().__init__(f"{resource}: {message}" if resource else message)


class ConfigError(FeedbotError):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str], *, resource: str | None = None) -> None:
        self.problems = problems
        super().__init__("; ".join(problems), resource=resource)


class InputError(FeedbotError):
    """An input file could not be imported; ``line`` is 1-based when known."""

    def __init__(self, message: str, *, resource: str, line: int | None = None) -> None:
        self.line = line
        where = f"{resource}:{line}" if line is not None else resource
        super().__init__(message, resource=where)


class StoreError(FeedbotError):
    """The store failed or holds something unexpected."""


class FetchError(FeedbotError):
    """An upstream could not be fetched; ``kind`` classifies the failure."""

    def __init__(self, message: str, *, resource: str, kind: str = "error") -> None:
        self.kind = kind
        super().__init__(message, resource=resource)


class ParseError(FeedbotError):
    """Bytes that were expected to be a feed are not one."""


class PublishError(FeedbotError):
    """A feed could not be generated or written."""


class NotifyError(FeedbotError):
    """A notification could not be built or delivered."""


class DaemonError(FeedbotError):
    """The daemon could not start or keep running."""


class ProcessingError(FeedbotError):
    """Processing a fetched response raised (a bug); the message names the exception.

    A worker process hands it back in place of that poll's result."""
