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
    for name in ("http", "keys", "log", "metrics"):
        setattr(imports, name, types.ModuleType(f"wit_world.imports.{name}"))
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
