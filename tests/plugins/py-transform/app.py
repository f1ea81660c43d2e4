"""The benchmark's transform, in Python: parse each value, upper-case `name`, mark it
`seen`, re-serialise. The output is counted (`bytes_out`), not stored, so the benchmark
measures the language rather than a disk. A value that is not JSON raises, uncaught,
which the tests use to check that tracebacks reach the host."""

import json

import weir


class Transform(weir.Sink):
    name = "py-transform"
    description = "The benchmark transform (tests only)."

    def write(self, records):
        size = 0
        for r in records:
            obj = json.loads(r.value)
            if isinstance(obj.get("name"), str):
                obj["name"] = obj["name"].upper()
            obj["seen"] = True
            size += len(json.dumps(obj, separators=(",", ":"))) + 1
        weir.metrics.counter_add("bytes_out", size)

    def flush(self):
        pass


Connector, SinkWrite = weir.export(Transform)
