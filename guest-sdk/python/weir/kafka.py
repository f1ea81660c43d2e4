"""Kafka through the host: the brokers, group and client properties come from the
pipeline's grants (`grants.kafka`), and only the topics they name may be used.

    consumer = weir.kafka.Consumer(["orders"])
    for record, origin in consumer.poll(500, 1000):
        ...
    consumer.commit([origin.position_after()])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from weir._host import call, needs, wit_kafka


@dataclass(frozen=True)
class Position:
    """A partition's position: the offset of the next record to read."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Origin:
    """Where a polled record came from."""

    topic: str
    partition: int
    offset: int

    def position_after(self) -> Position:
        """The position to commit once this record is safely delivered."""
        return Position(self.topic, self.partition, self.offset + 1)


def _positions(positions: Iterable[Position]):
    return [wit_kafka.Position(p.topic, p.partition, p.offset) for p in positions]


class Consumer:
    """Joins the granted group on `topics`. Assigned partitions start at `positions`
    where given (a checkpoint), else at the group's committed offsets."""

    def __init__(self, topics: Sequence[str], positions: Iterable[Position] = ()) -> None:
        kafka = needs(wit_kafka, "kafka")
        self._consumer = call(kafka.Consumer.open, list(topics), _positions(positions))

    def poll(self, max_records: int, timeout_ms: int) -> "list[tuple]":
        """At most `max_records` (record, origin) pairs, waiting at most `timeout_ms`."""
        from weir._glue import unpack

        polled = call(self._consumer.poll, max_records, timeout_ms)
        origins = [Origin(polled.topics[o.topic], o.partition, o.offset) for o in polled.origins]
        return list(zip(unpack(polled.records), origins))

    def commit(self, positions: Iterable[Position]) -> None:
        call(self._consumer.commit, _positions(positions))

    def backlog(self) -> Optional[int]:
        """Records the assigned partitions hold past this consumer's positions (None while
        the group has assigned it none)."""
        return call(self._consumer.backlog)


class Producer:
    """An idempotent producer with `acks=all`."""

    def __init__(self) -> None:
        self._producer = call(needs(wit_kafka, "kafka").Producer.open)

    def send(self, topic: str, records: list) -> None:
        """Queues `records` (weir.Record, bytes, str or JSON values) for `topic`,
        partitioned by key."""
        from weir._glue import pack

        call(self._producer.send, topic, pack(records))

    def flush(self, timeout_ms: int = 30_000) -> None:
        """Returns once every record sent so far is acknowledged by the brokers."""
        call(self._producer.flush, timeout_ms)
