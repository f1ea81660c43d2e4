"""{{name}}: a stream source. Each poll emits up to `per_poll` records {"n": N} until
`limit`; the checkpoint is the next N, so a restart resumes after the last commit."""

import weir


class Source(weir.StreamSource):
    name = "{{name}}"
    version = "0.1.0"
    description = "Emits a counter, `per_poll` records a poll, up to `limit`."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "per_poll": {"type": "integer", "minimum": 1, "default": 10},
            "limit": {"type": "integer", "minimum": 0, "default": 100},
        },
    }

    def __init__(self, config, checkpoint):
        self.next_n = checkpoint or 0
        self.per_poll = config.get("per_poll", 10)
        self.limit = config.get("limit", 100)

    def poll(self, max_records, max_wait_ms):
        end = min(self.next_n + min(max_records, self.per_poll), self.limit)
        records = [{"n": n} for n in range(self.next_n, end)]
        self.next_n = max(end, self.next_n)
        return weir.Batch(records, checkpoint=self.next_n)

    def ack(self, checkpoint):
        weir.log.debug("committed", checkpoint=checkpoint)


Connector, StreamRead = weir.export(Source)
