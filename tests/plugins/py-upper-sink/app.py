"""A sink written in Python (componentize-py) for the host's tests: it appends each
record's value, upper-cased, to `out.jsonl` in `dir`, and fsyncs on flush. Values that
are not JSON objects are handed back as dead letters. It shows the
contract works from a second language; the Python SDK proper is issue 4's."""

import json
from wit_world import exports
from wit_world.imports import types


class Connector(exports.Connector):
    def spec(self) -> types.ConnectorSpec:
        schema = {"type": "object", "properties": {"dir": {"type": "string"}}, "required": ["dir"]}
        return types.ConnectorSpec("py-upper-sink", "0.1.0", "Writes values upper-cased (tests only).", json.dumps(schema))

    def check(self, config: str) -> None:
        json.loads(config)


class SinkWrite(exports.SinkWrite):
    pass
