"""The Python SDK's glue under plain CPython (`python3 -m unittest discover -s
guest-sdk/python/tests`): what a connector hands the host and what it gets back.

The component bindings exist only inside a component; here they are stood in for by plain
classes with the contract's fields, in the contract's order, so `weir._glue` runs as is."""

import dataclasses
import enum
import json
import os
import sys
import types
import unittest
from typing import Any, Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def _record(name, *fields):
    return dataclasses.make_dataclass(name, [(f, Any) for f in fields])


def _bindings():
    t = types.ModuleType("wit_world.imports.types")
    t.Span = _record("Span", "offset", "len")
    t.Header = _record("Header", "key", "value")
    t.Records = _record("Records", "data", "headers", "items")
    t.DeadLetter = _record("DeadLetter", "key", "value", "reason")
    t.Batch = _record("Batch", "records", "dead_letters", "checkpoint")
    t.StreamInfo = _record("StreamInfo", "name", "schema")
    t.ConnectorSpec = _record("ConnectorSpec", "name", "version", "description", "config_schema")
    t.ChangeOp = enum.Enum("ChangeOp", ["CREATE", "UPDATE", "DELETE", "SNAPSHOT"])
    t.Error_Config = _record("Error_Config", "value")
    t.Error_Transient = _record("Error_Transient", "value")
    t.Error_Fatal = _record("Error_Fatal", "value")
    imports = types.ModuleType("wit_world.imports")
    imports.types = t
    for name in ("http", "kafka", "keys", "kinesis", "log", "metrics", "objects", "sql"):
        setattr(imports, name, types.ModuleType(f"wit_world.imports.{name}"))
    sql = imports.sql
    for variant in ("Null", "Boolean", "Int", "Float", "Text", "Bytes", "Json"):
        fields = () if variant == "Null" else ("value",)
        setattr(sql, f"Value_{variant}", _record(f"Value_{variant}", *fields))
    sql.Statement = _record("Statement", "sql", "params")
    world = types.ModuleType("wit_world")
    world.imports = imports
    exports = types.ModuleType("wit_world.exports")
    transform = types.ModuleType("wit_world.exports.transform_records")
    transform.Transformed = _record("Transformed", "records", "dead_letters")
    exports.transform_records = transform
    world.exports = exports
    cpt = types.ModuleType("componentize_py_types")

    class Err(Exception):
        def __init__(self, value):
            super().__init__(value)
            self.value = value

    cpt.Err = Err
    sys.modules.update(
        {
            "wit_world": world,
            "wit_world.imports": imports,
            "wit_world.imports.types": t,
            "wit_world.exports": exports,
            "wit_world.exports.transform_records": transform,
            "componentize_py_types": cpt,
        }
    )
    return t, Err


wit, Err = _bindings()

import weir  # noqa: E402
from weir import _glue  # noqa: E402


class Packing(unittest.TestCase):
    def test_records_survive_packing_and_unpacking_every_field(self):
        records = [
            weir.Record(b'{"n":1}', b"k1", [("h", b"v")], 1700000000000, "update"),
            weir.Record(None, b"k2"),  # a tombstone
            {"n": 3},  # any JSON value is a record's value
            "plain text",
        ]
        back = _glue.unpack(_glue.pack(records))
        self.assertEqual(back[0], weir.Record(b'{"n":1}', b"k1", [("h", b"v")], 1700000000000, "update"))
        self.assertEqual(back[1], weir.Record(None, b"k2"))
        self.assertEqual(back[2].json(), {"n": 3})
        self.assertEqual(back[3].value, b"plain text")
        self.assertIsNone(back[3].key)

    def test_every_span_lies_inside_the_one_buffer(self):
        packed = _glue.pack([weir.Record(b"bc", b"a", [("d", b"ef")]), b"ghi"])
        entries = list(_glue._ITEM.iter_unpack(packed.items))
        spans = [(o, n) for e in entries for (o, n) in (e[0:2], e[2:4]) if n != _glue._ABSENT]
        spans += [(s.offset, s.len) for h in packed.headers for s in (h.key, h.value)]
        self.assertTrue(all(o + n <= len(packed.data) for o, n in spans))
        self.assertEqual(sorted(packed.data[o : o + n] for o, n in spans), [b"a", b"bc", b"d", b"ef", b"ghi"])
        self.assertEqual(len(packed.data), 9, "nothing else in the buffer")

    def test_entries_have_the_bytes_the_contract_documents(self):
        # The layout wit/wire documents and tests, field by field.
        packed = _glue.pack([weir.Record(None, b"?", [], -5, "delete"), b""])
        self.assertEqual(
            packed.items.hex(),
            "0000000001000000" "00000000ffffffff" "0000000000000000" "03000000" "fbffffffffffffff"
            "00000000ffffffff" "0100000000000000" "0000000000000000" "00000000" "0000000000000080",
        )

class Errors(unittest.TestCase):
    def raised(self, e):
        def fail():
            raise e

        with self.assertRaises(Err) as caught:
            _glue.guarded(fail)
        return caught.exception.value

    def test_exceptions_become_the_contracts_typed_errors(self):
        self.assertEqual(self.raised(weir.ConfigError("bad dir")), wit.Error_Config("bad dir"))
        self.assertEqual(self.raised(weir.TransientError("busy")), wit.Error_Transient("busy"))
        fatal = self.raised(KeyError("x"))
        self.assertIsInstance(fatal, wit.Error_Fatal)
        self.assertTrue(fatal.value.startswith("KeyError: 'x'\nTraceback"), fatal.value)
        self.assertIn("test_glue.py", fatal.value, "with the traceback")
        self.assertEqual(_glue.guarded(lambda: 42), 42)


class Configs(unittest.TestCase):
    def test_a_config_breaking_the_top_of_the_schema_is_a_config_error_naming_the_field(self):
        from weir import _export

        class Source(weir.BatchSource):
            config_schema = {
                "type": "object",
                "required": ["url"],
                "additionalProperties": False,
                "properties": {"url": {"type": "string"}, "size": {"type": "integer"}, "on": {"type": "boolean"}},
            }

        _export.exported = Source
        self.assertEqual(_glue.config('{"url": "u", "size": 3, "on": true}'), {"url": "u", "size": 3, "on": True})
        for text, said in [
            ("{}", "missing field `url`"),
            ('{"url": "u", "extra": 1}', "unknown field `extra`"),
            ('{"url": 5}', "field `url`: expected string"),
            ('{"url": "u", "size": true}', "field `size`: expected integer"),
            ('{"url": "u", "on": 1}', "field `on`: expected boolean"),
            ("[1]", "expected a JSON object"),
        ]:
            with self.assertRaises(weir.ConfigError) as caught:
                _glue.config(text)
            self.assertIn(said, str(caught.exception), text)


class Positions(unittest.TestCase):
    def test_a_checkpoint_that_is_not_json_is_a_config_error(self):
        self.assertEqual(_glue.position('{"offset": 3}'), {"offset": 3})
        self.assertIsNone(_glue.position(None))
        with self.assertRaises(weir.ConfigError) as caught:
            _glue.position("not json")
        self.assertIn("cannot read the checkpoint", str(caught.exception))

    def test_checkpoints_travel_as_json(self):
        b = _glue.batch(
            weir.Batch(["r"], checkpoint={"file": "a.jsonl", "offset": 7}, dead_letters=[weir.DeadLetter.of(weir.Record(b"x"), "no")])
        )
        self.assertEqual(json.loads(b.checkpoint), {"file": "a.jsonl", "offset": 7})
        self.assertEqual(_glue.position(b.checkpoint), {"file": "a.jsonl", "offset": 7})
        self.assertIsNone(_glue.position(None), "no checkpoint yet")
        self.assertEqual(b.dead_letters, [wit.DeadLetter(None, b"x", "no")])
        with self.assertRaises(TypeError):
            _glue.batch({"records": []})

    def test_a_stream_acknowledges_the_decoded_checkpoint(self):
        acked = []

        class Counter(weir.StreamSource):
            def __init__(self, config, checkpoint):
                self.next = checkpoint or 0

            def poll(self, max_records, max_wait_ms):
                return weir.Batch([{"n": self.next}], self.next + 1)

            def ack(self, checkpoint):
                acked.append(checkpoint)

        weir.export(Counter)
        stream = _glue.Stream.open("{}", "41")
        polled = stream.poll(10, 0)
        self.assertEqual(polled.checkpoint, "42")
        stream.ack(polled.checkpoint)
        self.assertEqual(acked, [42])


class Transforms(unittest.TestCase):
    def test_a_transform_maps_filters_expands_and_rejects_keeping_what_it_returns(self):
        class Split(weir.Transform):
            def process(self, records):
                out = []
                for r in records:
                    v = r.json()
                    if v.get("skip"):
                        continue
                    if "bad" in v:
                        out.append(weir.DeadLetter.of(r, "bad"))
                        continue
                    for part in v.get("parts", [v]):
                        r.value = json.dumps(part).encode()
                        out.append(weir.Record(r.value, r.key, r.headers, r.timestamp_ms, r.op))
                return out

        weir.export(Split)
        t = _glue.Transformer.open("{}")
        given = _glue.pack(
            [
                weir.Record(b'{"parts":[1,2]}', b"k", [("h", b"v")], 5, "create"),
                {"skip": True},
                {"bad": 1},
                {"n": 3},
            ]
        )
        out = t.process(given)
        back = _glue.unpack(out.records)
        self.assertEqual([r.value for r in back], [b"1", b"2", b'{"n": 3}'])
        self.assertEqual(back[0], weir.Record(b"1", b"k", [("h", b"v")], 5, "create"))
        self.assertEqual(out.dead_letters, [wit.DeadLetter(None, b'{"bad":1}', "bad")])

    def test_an_exception_in_process_is_a_typed_error(self):
        class Boom(weir.Transform):
            def process(self, records):
                raise weir.TransientError("later")

        weir.export(Boom)
        with self.assertRaises(Err) as caught:
            _glue.Transformer.open("{}").process(_glue.pack([b"x"]))
        self.assertEqual(caught.exception.value, wit.Error_Transient("later"))


if __name__ == "__main__":
    unittest.main()


class HostInterfaces(unittest.TestCase):
    """weir.sql, weir.objects and weir.kafka over stand-ins for the host's imports: what
    they send the host, what they make of its answers and of its typed errors."""

    def test_sql_parameters_rows_and_errors(self):
        calls = []
        rows = [{"id": 1, "doc": {"a": 1}}, {"id": 2, "doc": None}]

        class Connection:
            @classmethod
            def open(cls):
                return cls()

            def execute(self, statement, params):
                calls.append((statement, params))
                return 1

            def query(self, statement, params):
                calls.append((statement, params))
                self.left = list(rows)

            def fetch(self, max_rows):
                taken, self.left = self.left[:max_rows], self.left[max_rows:]
                return _glue.pack(taken)

            def transaction(self, statements):
                if any("DROP" in s.sql for s in statements):
                    raise Err(wit.Error_Config("permission denied for table t"))
                return [1 for _ in statements]

        sys.modules["wit_world.imports"].sql.Connection = Connection
        db = weir.sql.connect()
        self.assertEqual(db.execute("INSERT $1 $2 $3 $4 $5 $6 $7", None, True, 3, 1.5, "s", b"b", {"a": 1}), 1)
        sql = sys.modules["wit_world.imports"].sql
        self.assertEqual(
            calls[0][1],
            [sql.Value_Null(), sql.Value_Boolean(True), sql.Value_Int(3), sql.Value_Float(1.5),
             sql.Value_Text("s"), sql.Value_Bytes(b"b"), sql.Value_Json('{"a": 1}')],
        )
        self.assertEqual(list(db.rows("SELECT", chunk=1)), rows, "fetched one at a time to the end")
        self.assertEqual(db.transaction([("INSERT 1", []), ("INSERT 2", [7])]), [1, 1])
        with self.assertRaises(weir.ConfigError) as caught:
            db.transaction([("DROP TABLE t", [])])
        self.assertIn("permission denied", str(caught.exception))

    def test_objects_are_listed_by_page_and_read_in_pieces(self):
        objects = sys.modules["wit_world.imports"].objects
        store = {f"k{i:02}": bytes([i]) * (i * 3) for i in range(7)}
        Info = _record("ObjectInfo", "key", "size", "etag", "last_modified_ms")

        def listing(prefix, start_after, max):
            keys = sorted(k for k in store if k.startswith(prefix) and (start_after is None or k > start_after))
            return [Info(k, len(store[k]), None, 0) for k in keys[:max]]

        def read(key, offset, len):
            if key not in store:
                raise Err(wit.Error_Transient(f"{key}: not found"))
            return store[key][offset : offset + len]

        objects.list, objects.read = listing, read
        objects.write = lambda key, data: store.__setitem__(key, data)
        self.assertEqual([o.key for o in weir.objects.walk("k", page=2)], sorted(store))
        self.assertEqual(weir.objects.read_all("k06", piece=4), store["k06"])
        weir.objects.write("new", b"x")
        self.assertEqual(store["new"], b"x")
        with self.assertRaises(weir.TransientError):
            weir.objects.read("missing")

    def test_kafka_records_and_origins_come_back_paired(self):
        kafka = sys.modules["wit_world.imports"].kafka
        kafka.Position = _record("Position", "topic", "partition", "offset")
        Origin = _record("Origin", "topic", "partition", "offset")
        Polled = _record("Polled", "records", "origins", "topics")
        sent, committed = [], []

        class Consumer:
            @classmethod
            def open(cls, topics, positions):
                return cls()

            def poll(self, max_records, timeout_ms):
                return Polled(_glue.pack([{"n": 1}, {"n": 2}]), [Origin(1, 0, 41), Origin(0, 2, 7)], ["a", "b"])

            def commit(self, positions):
                committed.extend(positions)

        class Producer:
            @classmethod
            def open(cls):
                return cls()

            def send(self, topic, records):
                sent.append((topic, [r.value for r in _glue.unpack(records)]))

        kafka.Consumer, kafka.Producer = Consumer, Producer
        polled = weir.kafka.Consumer(["a", "b"]).poll(10, 100)
        self.assertEqual([(json.loads(r.value), o.topic, o.offset) for r, o in polled], [({"n": 1}, "b", 41), ({"n": 2}, "a", 7)])
        weir.kafka.Consumer(["b"]).commit([polled[0][1].position_after()])
        self.assertEqual(committed, [kafka.Position("b", 0, 42)])
        weir.kafka.Producer().send("out", [{"n": 3}, weir.Record(b"v", b"k")])
        self.assertEqual(sent, [("out", [b'{"n":3}', b"v"])])


    def test_kinesis_start_positions_and_throttling(self):
        kinesis = sys.modules["wit_world.imports"].kinesis
        kinesis.StartAt_TrimHorizon = _record("StartAt_TrimHorizon")
        kinesis.StartAt_Latest = _record("StartAt_Latest")
        kinesis.StartAt_AfterSequenceNumber = _record("StartAt_AfterSequenceNumber", "value")
        kinesis.StartAt_AtSequenceNumber = _record("StartAt_AtSequenceNumber", "value")
        kinesis.StartAt_AtTimestamp = _record("StartAt_AtTimestamp", "value")
        kinesis.ReadError_Throttled = _record("ReadError_Throttled", "value")
        kinesis.ReadError_Other = _record("ReadError_Other", "value")
        opened = []

        class ShardReader:
            @classmethod
            def open(cls, stream, shard, start):
                if stream == "missing":
                    raise Err(kinesis.ReadError_Other(wit.Error_Config("stream missing is not granted")))
                opened.append(start)
                return cls()

            def read(self, max):
                raise Err(kinesis.ReadError_Throttled("over 5 reads a second"))

        kinesis.ShardReader = ShardReader
        weir.kinesis.ShardReader("s", "shard-0")
        weir.kinesis.ShardReader("s", "shard-0", {"after_sequence_number": "42"})
        self.assertEqual(opened, [kinesis.StartAt_TrimHorizon(), kinesis.StartAt_AfterSequenceNumber("42")])
        with self.assertRaises(weir.kinesis.Throttled) as caught:
            weir.kinesis.ShardReader("s", "shard-0").read()
        self.assertIsInstance(caught.exception, weir.TransientError, "a throttle is retried")
        with self.assertRaises(weir.ConfigError):
            weir.kinesis.ShardReader("missing", "shard-0")
