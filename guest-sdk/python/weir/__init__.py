"""Write weir connectors in Python.

Subclass one of `BatchSource`, `StreamSource`, `Sink` or `Transform`, then export it from your app
module (the one componentize-py is pointed at):

    import weir

    class Numbers(weir.BatchSource):
        name = "numbers"
        config_schema = {"type": "object", "properties": {"count": {"type": "integer"}}}

        def __init__(self, config, checkpoint):
            self.next_n = checkpoint or 0
            self.end = config["count"]

        def next(self, max_records):
            if self.next_n >= self.end:
                return None
            end = min(self.next_n + max_records, self.end)
            records = [str(n) for n in range(self.next_n, end)]
            self.next_n = end
            return weir.Batch(records, checkpoint=end)

    Connector, BatchRead = weir.export(Numbers)

The semantics are the Rust SDK's: the host validates `config` against `config_schema`
before your class sees it, commits a batch's checkpoint only after the sink flushed it, and
retries `TransientError`s. Any other exception stops the pipeline, with its traceback in
the host's log.

Everything here but `export` works in plain CPython too, so a connector's logic can be
unit-tested without building a component.
"""

from weir._api import (
    Batch,
    BatchSource,
    ConfigError,
    DeadLetter,
    FatalError,
    Record,
    Sink,
    StreamInfo,
    StreamSource,
    Transform,
    TransientError,
    WeirError,
)
from weir._export import export
from weir import http, kafka, keys, kinesis, log, metrics, objects, sql

__all__ = [
    "Batch",
    "BatchSource",
    "ConfigError",
    "DeadLetter",
    "FatalError",
    "Record",
    "Sink",
    "StreamInfo",
    "StreamSource",
    "Transform",
    "TransientError",
    "WeirError",
    "export",
    "http",
    "kafka",
    "keys",
    "kinesis",
    "log",
    "metrics",
    "objects",
    "sql",
]
