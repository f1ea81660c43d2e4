"""Between componentize-py's bindings and the connector classes: JSON in and out, packed
records in and out, exceptions to typed errors. Imported only inside a component."""

import json
import struct
import traceback

from componentize_py_types import Err
from wit_world.imports import types

from weir import _export
from weir._api import (
    OPS,
    Batch,
    ConfigError,
    DeadLetter,
    Record,
    TransientError,
)

# A record's entry in `items` (wit/connector.wit, `records`): key, value and header spans,
# the op (0: none, else OPS's index + 1) and the timestamp, little-endian, 36 bytes.
_ITEM = struct.Struct("<7Iq")
_ABSENT = 0xFFFFFFFF
_NO_TIME = -(1 << 63)
_OP_CODES = {name: i + 1 for i, name in enumerate(OPS)}
_OP_NAMES = (None,) + OPS


def connector():
    return _export.exported


def guarded(call):
    """Runs `call`, turning exceptions into the contract's typed errors: a Python error
    reaches the host with its message and traceback rather than as a bare trap."""
    try:
        return call()
    except Err:
        raise
    except ConfigError as e:
        raise Err(types.Error_Config(str(e)))
    except TransientError as e:
        raise Err(types.Error_Transient(str(e)))
    except Exception as e:
        trace = "".join(traceback.format_exception(e)).rstrip()
        raise Err(types.Error_Fatal(f"{type(e).__name__}: {e}\n{trace}"))


_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def config(text: str) -> dict:
    """The config, held to the top of the connector's own schema (the fields it requires,
    the ones it allows, their types) so that a call outside a pipeline, where the host has
    not validated it, still fails as a config error naming the field."""
    value = json.loads(text)
    schema = connector().config_schema
    if not isinstance(value, dict):
        raise ConfigError("config: expected a JSON object")
    for name in schema.get("required", []):
        if name not in value:
            raise ConfigError(f"config: missing field `{name}`")
    properties = schema.get("properties", {})
    for name, field in value.items():
        if name not in properties:
            if schema.get("additionalProperties") is False:
                raise ConfigError(f"config: unknown field `{name}`")
            continue
        wanted = properties[name].get("type")
        kinds = _TYPES.get(wanted) if isinstance(wanted, str) else None
        is_bool = isinstance(field, bool)
        if kinds and (not isinstance(field, kinds) or (is_bool and wanted != "boolean")):
            raise ConfigError(f"config: field `{name}`: expected {wanted}, got {json.dumps(field)}")
    return value


def position(text):
    """A checkpoint as the connector wrote it; one that is not JSON (edited, or
    from elsewhere) is a config error, as the contract asks, not a crash."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(f"this version cannot read the checkpoint it was given ({e}): reset it or set one it can read (weir checkpoint)")


def _bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


def pack(records) -> types.Records:
    """Packs records into one buffer: every key, value and header is a span of `data`, and
    each record one fixed-size entry of `items`."""
    chunks = []
    offset = 0
    headers = []
    items = bytearray()
    entry = _ITEM.pack

    def span(b):
        nonlocal offset
        chunks.append(b)
        at = offset
        offset += len(b)
        return at, len(b)

    for r in records:
        if not isinstance(r, Record):
            v = _bytes(r)
            items += entry(0, _ABSENT, *span(v), len(headers), 0, 0, _NO_TIME)
            continue
        first = len(headers)
        for k, v in r.headers:
            headers.append(types.Header(types.Span(*span(k.encode())), types.Span(*span(_bytes(v)))))
        key = (0, _ABSENT) if r.key is None else span(_bytes(r.key))
        value = (0, _ABSENT) if r.value is None else span(_bytes(r.value))
        items += entry(
            *key,
            *value,
            first,
            len(headers) - first,
            0 if r.op is None else _OP_CODES[r.op],
            _NO_TIME if r.timestamp_ms is None else r.timestamp_ms,
        )
    return types.Records(b"".join(chunks), headers, bytes(items))


def unpack(records: types.Records) -> list:
    # The per-record loop of every Python sink: locals and inlined slices, no helper calls.
    data = records.data
    headers = records.headers
    names = _OP_NAMES
    absent = _ABSENT
    no_time = _NO_TIME
    out = []
    append = out.append
    for ko, kl, vo, vl, hf, hc, op, ts in _ITEM.iter_unpack(records.items):
        hs = None
        if hc:
            hs = [
                (
                    data[x.key.offset : x.key.offset + x.key.len].decode(),
                    data[x.value.offset : x.value.offset + x.value.len],
                )
                for x in headers[hf : hf + hc]
            ]
        append(
            Record(
                None if vl == absent else data[vo : vo + vl],
                None if kl == absent else data[ko : ko + kl],
                hs,
                None if ts == no_time else ts,
                names[op],
            )
        )
    return out


def dead_letter(d) -> types.DeadLetter:
    return types.DeadLetter(
        None if d.key is None else _bytes(d.key),
        None if d.value is None else _bytes(d.value),
        d.reason,
    )


def batch(b: Batch) -> types.Batch:
    if not isinstance(b, Batch):
        raise TypeError(f"expected a weir.Batch, got {type(b).__name__}")
    return types.Batch(
        pack(b.records),
        [dead_letter(d) for d in b.dead_letters],
        json.dumps(b.checkpoint),
    )


def stream_info(s) -> types.StreamInfo:
    return types.StreamInfo(s.name, None if s.schema is None else json.dumps(s.schema))


class Connector:
    def spec(self) -> types.ConnectorSpec:
        c = connector()
        return types.ConnectorSpec(c.name, c.version, c.description, json.dumps(c.config_schema))

    def check(self, text: str) -> None:
        guarded(lambda: connector().check(config(text)))


class BatchRead:
    def discover(self, text: str):
        return guarded(lambda: [stream_info(s) for s in connector().discover(config(text))])


class StreamRead:
    def discover(self, text: str):
        return guarded(lambda: [stream_info(s) for s in connector().discover(config(text))])


class SinkWrite:
    pass


class Reader:
    def __init__(self, inner):
        self.inner = inner

    @classmethod
    def open(cls, text: str, checkpoint):
        return cls(guarded(lambda: connector()(config(text), position(checkpoint))))

    def next(self, max_records: int):
        def call():
            b = self.inner.next(max_records)
            return None if b is None else batch(b)

        return guarded(call)


class Stream:
    def __init__(self, inner):
        self.inner = inner

    @classmethod
    def open(cls, text: str, checkpoint):
        return cls(guarded(lambda: connector()(config(text), position(checkpoint))))

    def poll(self, max_records: int, max_wait_ms: int):
        return guarded(lambda: batch(self.inner.poll(max_records, max_wait_ms)))

    def ack(self, checkpoint: str) -> None:
        guarded(lambda: self.inner.ack(json.loads(checkpoint)))


class Writer:
    def __init__(self, inner):
        self.inner = inner

    @classmethod
    def open(cls, text: str):
        return cls(guarded(lambda: connector()(config(text))))

    def write(self, records: types.Records):
        def call():
            rejected = self.inner.write(unpack(records)) or []
            return [dead_letter(d) for d in rejected]

        return guarded(call)

    def flush(self) -> None:
        guarded(self.inner.flush)


class TransformRecords:
    pass


def transformed(outputs):
    """A transform's outputs as the contract's `transformed`: dead letters apart, the rest
    packed."""
    from wit_world.exports.transform_records import Transformed

    records, rejected = [], []
    for o in outputs or []:
        (rejected if isinstance(o, DeadLetter) else records).append(o)
    return Transformed(pack(records), [dead_letter(d) for d in rejected])


class Transformer:
    def __init__(self, inner):
        self.inner = inner

    @classmethod
    def open(cls, text: str):
        return cls(guarded(lambda: connector()(config(text))))

    def process(self, records: types.Records):
        return guarded(lambda: transformed(self.inner.process(unpack(records))))
