"""The exception tree of the monitor.

    MonitorError
     +-- ConfigError          targets.toml is invalid; carries every Problem found
     +-- StoreError           the database cannot be used
     |    +-- StoreUnavailable  cannot reach the database now (checks are buffered meanwhile)
     |    |    +-- StoreReadOnly  it answers but takes no writes (read-only, or its disk is full)
     |    +-- SchemaOutdated  the database schema is older than this code
     |    +-- StoreInUse      another `monitor run` has this SQLite file
     +-- UsageError           a command was called with arguments that cannot work
     +-- ReadRefused          a capture over the limits of reading (CPU time, memory): a bad capture

Runtime failures while checking a page are *not* exceptions: they become an outcome on
the check row (see ``monitor.domain.Outcome``) so that the loop never dies.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One problem in a configuration file, located as precisely as we can."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ConfigError(MonitorError):
    """The configuration is invalid; ``problems`` lists every problem at once."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {path}: {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in {path}:\n{lines}")


class StoreError(MonitorError):
    """The database could not be used."""


class StoreUnavailable(StoreError):
    """The database cannot be reached (down, network, locked): worth retrying later."""


class SchemaOutdated(StoreError):
    """The database schema is not at the revision this code needs."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"database schema is at {current or 'nothing'}, this monitor needs {head}: run `monitor db upgrade`"
        )


class StoreReadOnly(StoreUnavailable):
    """The database takes no writes (a read-only file, folder or connection; a full disk): a running monitor
    buffers and retries (space may be freed); a one-shot command stops with the reason."""


class StoreInUse(StoreError):
    """Another monitor runs on this SQLite file (one instance per file)."""


class UsageError(MonitorError):
    """A command cannot do what it was asked to do."""


class ReadRefused(MonitorError):
    """A capture whose reading went over a limit (CPU time, memory, real time) or broke the reader: recorded as
    a bad capture with the reason, never a change."""
