"""One error taxonomy for the whole daemon.

The engine decides what to do from the class alone: retry a retriable error, park a skippable
record in the dead-letter table, stop the stream on a fatal one. Configuration problems are kept
apart because they are the user's to fix, and are reported all at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class PmsyncError(Exception):
    """Root of every error pmsync raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration or mapping file, and where."""

    file: str | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file or "<config>"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(PmsyncError):
    """The configuration or a mapping file is wrong; carries every problem found."""

    def __init__(self, problems: Sequence[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(None, "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def collect(cls, problems: Iterable[Problem]) -> None:
        """Raise with all problems if there are any."""
        found = list(problems)
        if found:
            raise cls(found)


class UsageError(PmsyncError):
    """A command-line argument names something the configuration does not have.

    `param` is the argument or option as the user typed it (`CONNECTOR`, `--stream`).
    """

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


class NoStore(PmsyncError):
    """A command that only reads found no store where the configuration points.

    Only the commands that write (`sync`, `run`, `apply`, `demo`) create one."""


class StoreBusy(PmsyncError):
    """Another pmsync process holds the store (a running daemon on a SQLite file)."""


class ConnectorError(PmsyncError):
    """Raised by a connector; the subclass says what the engine should do.

    `kind` names the failure for people (`pmsync check`), where a class name would not.
    """

    kind = "error"

    def __init__(self, message: str, *, connector: str | None = None) -> None:
        self.connector = connector
        super().__init__(f"{connector}: {message}" if connector else message)


class RetriableError(ConnectorError):
    """A transient failure (429, 5xx, timeout, expired session); the read is resumed later."""

    kind = "temporary failure"

    def __init__(
        self, message: str, *, connector: str | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, connector=connector)


class Unreachable(RetriableError):
    """No connection to the API's host (its name does not resolve, it refused or did not take
    the connection): the request never reached the API. Retried once."""

    kind = "unreachable"


class SkippableError(ConnectorError):
    """One record or item cannot be processed; it goes to the dead-letter table."""

    kind = "bad record"


class FatalError(ConnectorError):
    """The stream cannot go on this cycle; state already committed is kept."""

    kind = "failed"


class StillUnreachable(FatalError):
    """The host failed to connect twice in a row: no more retries this cycle (the next cycle
    tries again); other requests to it fail at once for a short while, unsent."""

    kind = "unreachable"


class AuthError(FatalError):
    """The API refused the credentials; this is the user's configuration to fix."""

    kind = "credentials"


class QuotaExhausted(FatalError):
    """The API budget (e.g. Salesforce's daily allocation minus its reserve) is used up.

    Not a failure: the engine stops the connector cleanly and resumes on a later cycle.
    """

    kind = "quota"


class Interrupted(PmsyncError):
    """The process asked a stream to stop (shutdown, reload, lost ownership).

    Raised between pages or during a wait; pages already committed stand, and the next run
    resumes from the stored cursor. Not a failure: the stream's state is left untouched.
    """


class MappingFailure(PmsyncError):
    """One record could not be mapped; names the field and the reason."""

    def __init__(self, reason: str, *, field: str | None = None, key: str | None = None) -> None:
        self.reason = reason
        self.field = field
        self.key = key
        where = f"field '{field}'" if field else "record"
        super().__init__(f"{where}: {reason}")
