"""{{name}}: a transform. Upper-cases the string `field` of each JSON object, drops objects
without it, and rejects values that are not JSON objects (they go to the dead letters).
Keys, headers and timestamps pass through: the record is returned, changed."""

import json

import weir


class Upper(weir.Transform):
    name = "{{name}}"
    version = "0.1.0"
    description = "Upper-cases a field of each JSON object."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["field"],
        "properties": {"field": {"type": "string"}},
    }

    def __init__(self, config):
        self.field = config["field"]

    def process(self, records):
        out = []
        for r in records:
            try:
                value = json.loads(r.value)
            except (TypeError, ValueError):
                value = None
            if not isinstance(value, dict):
                out.append(weir.DeadLetter.of(r, "not a JSON object"))
                continue
            if not isinstance(value.get(self.field), str):
                continue
            value[self.field] = value[self.field].upper()
            r.value = json.dumps(value, separators=(",", ":")).encode()
            out.append(r)
        return out


Connector, TransformRecords = weir.export(Upper)
