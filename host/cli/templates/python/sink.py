"""{{name}}: a sink. Appends each record's value as a line to `file` in `dir` (a directory
the pipeline grants with `write = true`) and fsyncs on flush: when flush returns, the host
commits the source's checkpoint. Values that are not JSON objects go to the dead letters."""

import json
import os

import weir


class Lines(weir.Sink):
    name = "{{name}}"
    version = "0.1.0"
    description = "Appends JSON values as lines to a file."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["dir"],
        "properties": {"dir": {"type": "string"}, "file": {"type": "string", "default": "out.jsonl"}},
    }

    def __init__(self, config):
        self.out = open(os.path.join(config["dir"], config.get("file", "out.jsonl")), "ab")

    def write(self, records):
        rejected = []
        for r in records:
            try:
                value = json.loads(r.value)
            except (TypeError, ValueError) as e:
                rejected.append(weir.DeadLetter.of(r, f"not JSON: {e}"))
                continue
            if not isinstance(value, dict):
                rejected.append(weir.DeadLetter.of(r, "not a JSON object"))
                continue
            self.out.write(r.value + b"\n")
        return rejected

    def flush(self):
        self.out.flush()
        os.fsync(self.out.fileno())


Connector, SinkWrite = weir.export(Lines)
