"""The transform benchmark's step in Python: `select(.n % 2 == 0) | .name |=
ascii_upcase`, as jq would, keeping each record's key and headers."""

import json

import weir


class Evens(weir.Transform):
    name = "py-evens"
    description = "Keeps even `n`, upper-cases `name` (the transform benchmark)."

    def process(self, records):
        out = []
        for r in records:
            v = json.loads(r.value)
            if v["n"] % 2:
                continue
            v["name"] = v["name"].upper()
            r.value = json.dumps(v, separators=(",", ":")).encode()
            out.append(r)
        return out


Connector, TransformRecords = weir.export(Evens)
