"""The connector-facing types: plain Python, no bindings, so they work outside a component."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional


class WeirError(Exception):
    """Base of the errors the host tells apart."""


class ConfigError(WeirError):
    """The configuration cannot work; the host does not retry."""


class TransientError(WeirError):
    """A passing failure (a server away, a timeout); the host retries with backoff."""


class FatalError(WeirError):
    """Anything else that should stop the pipeline; an uncaught exception is one too."""


OPS = ("create", "update", "delete", "snapshot")


class Record:
    """One record. `value` None is a tombstone. A source may also hand `bytes`, `str` or
    any JSON-serialisable value instead of a `Record`: it becomes the value.

    A plain class with slots, not a dataclass: a sink gets thousands per batch, and their
    construction was a third of a simple transform's time."""

    __slots__ = ("value", "key", "headers", "timestamp_ms", "op")

    def __init__(
        self,
        value: Optional[bytes],
        key: Optional[bytes] = None,
        headers: Optional[list[tuple[str, bytes]]] = None,
        timestamp_ms: Optional[int] = None,
        op: Optional[str] = None,
    ) -> None:
        self.value = value
        self.key = key
        self.headers = [] if headers is None else headers
        self.timestamp_ms = timestamp_ms
        # "create", "update", "delete" or "snapshot" for change records.
        self.op = op

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and all(
            getattr(self, f) == getattr(other, f) for f in self.__slots__
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__)
        return f"Record({fields})"

    def json(self) -> Any:
        """The value parsed as JSON."""
        return None if self.value is None else json.loads(self.value)


@dataclass
class DeadLetter:
    """Input a connector could not handle, and why: the host stores it at the pipeline's
    dead-letter destination instead of stopping or dropping it."""

    value: Optional[bytes]
    reason: str
    key: Optional[bytes] = None

    @classmethod
    def of(cls, record: Record, reason: str) -> "DeadLetter":
        return cls(record.value, reason, record.key)


@dataclass
class Batch:
    """Records and the position reached after them (any JSON-serialisable value)."""

    records: list
    checkpoint: Any = None
    dead_letters: list[DeadLetter] = field(default_factory=list)


@dataclass
class StreamInfo:
    name: str
    schema: Optional[dict] = None


class _Connector:
    #: The connector's name, as `weir plugin inspect` shows it.
    name: str = ""
    version: str = "0.1.0"
    description: str = ""
    #: JSON Schema of the config; the host validates every config against it.
    config_schema: dict = {"type": "object"}

    @classmethod
    def check(cls, config: dict) -> None:
        """Can the config work (credentials, reachable servers)? Raise to say no."""


class BatchSource(_Connector):
    """A bounded read run on a schedule. One instance is one read."""

    @classmethod
    def discover(cls, config: dict) -> list[StreamInfo]:
        return []

    def __init__(self, config: dict, checkpoint: Any) -> None:
        """Start a read after `checkpoint` (None: from the beginning)."""

    def next(self, max_records: int) -> Optional[Batch]:
        """At most `max_records`, or None once the data at hand is exhausted."""
        raise NotImplementedError


class StreamSource(_Connector):
    """An unbounded read, polled continuously."""

    @classmethod
    def discover(cls, config: dict) -> list[StreamInfo]:
        return []

    def __init__(self, config: dict, checkpoint: Any) -> None:
        """Open the stream after `checkpoint` (None: where the config says)."""

    def poll(self, max_records: int, max_wait_ms: int) -> Batch:
        """Wait at most `max_wait_ms` for records; an empty batch is a normal answer."""
        raise NotImplementedError

    def ack(self, checkpoint: Any) -> None:
        """The host durably committed `checkpoint`: commit upstream positions here."""


class Sink(_Connector):
    """Delivery to an external system."""

    def __init__(self, config: dict) -> None:
        pass

    def write(self, records: list[Record]) -> Optional[list[DeadLetter]]:
        """Write what you can; return the records you reject (most sinks return nothing)."""
        raise NotImplementedError

    def flush(self) -> None:
        """When this returns, every record written before must be durable."""


class Transform(_Connector):
    """A step between a pipeline's source and its sink, called once per batch. It keeps no
    durable state: the host may open a new one (a new version) at any checkpoint."""

    def __init__(self, config: dict) -> None:
        pass

    def process(self, records: list[Record]) -> list:
        """What to pass on for `records`: any number of outputs, each a `Record` (keep an
        input's key and headers by returning it, changed), or a value as a source may hand
        one; and a `DeadLetter` for each record rejected, among them."""
        raise NotImplementedError
