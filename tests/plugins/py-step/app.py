"""A transform in Python for the tests: appends "py" to each JSON value's `steps`, and
turns each value's `amount` into integer `cents`. A value with `"split": n` becomes n
records (an expansion); one that is not a JSON object is rejected. With config
`{"hash": {"key": K, "field": F}}` it replaces field F by its HMAC under the granted key K,
computed by the host (`weir.keys`)."""

import json

import weir


class Step(weir.Transform):
    name = "py-step"
    description = "Marks records as seen by Python (tests only)."

    def __init__(self, config):
        self.hash = config.get("hash")

    def process(self, records):
        out = []
        for r in records:
            try:
                v = json.loads(r.value)
            except ValueError as e:
                out.append(weir.DeadLetter.of(r, f"not JSON: {e}"))
                continue
            if not isinstance(v, dict):
                out.append(weir.DeadLetter.of(r, "not a JSON object"))
                continue
            v["steps"] = v.get("steps", []) + ["py"]
            if self.hash and self.hash["field"] in v:
                field = self.hash["field"]
                [digest] = weir.keys.hmac_sha256(self.hash["key"], [str(v[field]).encode()])
                v[field] = bytes(digest).hex()
            if "amount" in v:
                v["cents"] = round(v.pop("amount") * 100)
            for i in range(v.pop("split", 1)):
                r.value = json.dumps(v | ({"part": i} if i else {}), separators=(",", ":")).encode()
                out.append(weir.Record(r.value, r.key, r.headers, r.timestamp_ms, r.op))
        return out


Connector, TransformRecords = weir.export(Step)
