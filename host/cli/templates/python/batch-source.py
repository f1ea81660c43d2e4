"""{{name}}: a batch source. Each run emits the numbers after the last committed checkpoint,
up to `count`, as {"n": N}; the host commits the checkpoint after the sink flushed."""

import weir


class Source(weir.BatchSource):
    name = "{{name}}"
    version = "0.1.0"
    description = "Counts to `count`, resuming where the last run ended."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["count"],
        "properties": {"count": {"type": "integer", "minimum": 0}},
    }

    def __init__(self, config, checkpoint):
        self.next_n = checkpoint or 0
        self.end = config["count"]

    def next(self, max_records):
        if self.next_n >= self.end:
            return None
        end = min(self.next_n + max_records, self.end)
        records = [{"n": n} for n in range(self.next_n, end)]
        self.next_n = end
        return weir.Batch(records, checkpoint=end)


Connector, BatchRead = weir.export(Source)
