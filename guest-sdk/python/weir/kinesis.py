"""Kinesis Data Streams through the host: the region, endpoint and credentials come from
the pipeline's grants (`grants.kinesis`), and only the streams they name may be used."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from weir._api import TransientError
from weir._host import call, needs, typed, wit_kinesis


class Throttled(TransientError):
    """Over a shard's read limits: back off, then read again."""


@dataclass
class Got:
    records: list
    #: The sequence number of each record, in order.
    sequence_numbers: list
    #: True once a closed shard is read to its end.
    ended: bool
    millis_behind_latest: Optional[int]


def _read(function, *args):
    try:
        return function(*args)
    except Exception as e:  # the host's read-error
        value = getattr(e, "value", None)
        if isinstance(value, wit_kinesis.ReadError_Throttled):
            raise Throttled(value.value) from None
        if isinstance(value, wit_kinesis.ReadError_Other):
            raise typed(value.value) from None
        raise


class ShardReader:
    """One shard, read in order from `start`: "trim-horizon", "latest", or a dict
    `{"at_sequence_number": s}`, `{"after_sequence_number": s}`, `{"at_timestamp": ms}`."""

    def __init__(self, stream: str, shard: str, start="trim-horizon") -> None:
        kinesis = needs(wit_kinesis, "kinesis")
        self._reader = _read(kinesis.ShardReader.open, stream, shard, _start(start))

    def read(self, max: int = 10_000) -> Got:
        from weir._glue import unpack

        got = _read(self._reader.read, max)
        return Got(unpack(got.records), got.sequence_numbers, got.ended, got.millis_behind_latest)


def _start(start):
    k = wit_kinesis
    if start == "trim-horizon":
        return k.StartAt_TrimHorizon()
    if start == "latest":
        return k.StartAt_Latest()
    (kind, value), = start.items()
    return {
        "at_sequence_number": k.StartAt_AtSequenceNumber,
        "after_sequence_number": k.StartAt_AfterSequenceNumber,
        "at_timestamp": k.StartAt_AtTimestamp,
    }[kind](value)


def list_shards(stream: str) -> list:
    """Every shard of a granted stream (closed ones in retention too)."""
    return call(needs(wit_kinesis, "kinesis").list_shards, stream)


def put_records(stream: str, records: list) -> list:
    """Puts `records` (each record's key is its partition key) in one PutRecords call;
    returns the failures (`index`, `code`, `message`) to put again."""
    from weir._glue import pack

    return call(needs(wit_kinesis, "kinesis").put_records, stream, pack(records))
