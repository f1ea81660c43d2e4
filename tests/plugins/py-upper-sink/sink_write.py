import json
from wit_world.exports import sink_write
from wit_world.imports import types


class Writer(sink_write.Writer):
    def __init__(self, path: str):
        self.path = path
        self.buffer = []

    @classmethod
    def open(cls, config: str) -> "Writer":
        return cls(json.loads(config)["dir"] + "/out.jsonl")

    def write(self, records: types.Records):
        data = records.data
        rejected = []
        for r in records.items:
            if r.value is None:
                continue
            v = data[r.value.offset : r.value.offset + r.value.len]
            if not v.startswith(b"{"):
                # The sink's own rule: one JSON object per line.
                rejected.append(types.DeadLetter(None, v, "expected a JSON object"))
                continue
            self.buffer.append(v.upper())
        return rejected

    def flush(self) -> None:
        import os
        with open(self.path, "ab") as f:
            for line in self.buffer:
                f.write(line + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self.buffer.clear()
