"""SQL through the host, on the database the pipeline grants (`grants.sql`): the URL,
user and password stay in the host. Parameters are `$1`, `$2`, ... and any of None, bool,
int, float, str, bytes, or a dict or list (sent as JSON). Rows come back as dicts, column
name to value, in the query's column order.

    db = weir.sql.connect()
    db.execute("INSERT INTO t (id, doc) VALUES ($1, $2)", 7, {"a": 1})
    for row in db.rows("SELECT id, doc FROM t WHERE id > $1", 5):
        ...
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Sequence

from weir._host import call, needs, wit_sql


def _value(v: Any):
    sql = wit_sql
    if v is None:
        return sql.Value_Null()
    if isinstance(v, bool):
        return sql.Value_Boolean(v)
    if isinstance(v, int):
        return sql.Value_Int(v)
    if isinstance(v, float):
        return sql.Value_Float(v)
    if isinstance(v, str):
        return sql.Value_Text(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return sql.Value_Bytes(bytes(v))
    return sql.Value_Json(json.dumps(v))


class Connection:
    """One connection to the granted database (it counts against the pipeline's
    `limits.sql_connections`)."""

    def __init__(self) -> None:
        self._conn = call(needs(wit_sql, "sql").Connection.open)

    def execute(self, statement: str, *params: Any) -> int:
        """Runs one statement in a transaction of its own; the rows it affected."""
        return call(self._conn.execute, statement, [_value(p) for p in params])

    def transaction(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Runs `(statement, params)` pairs in one transaction: all apply, or none."""
        return call(
            self._conn.transaction,
            [wit_sql.Statement(s, [_value(p) for p in ps]) for s, ps in statements],
        )

    def query(self, statement: str, *params: Any) -> None:
        """Starts reading a query's rows from a server-side cursor (ending the last)."""
        call(self._conn.query, statement, [_value(p) for p in params])

    def fetch(self, max_rows: int = 1000) -> list[dict]:
        """The next rows of the query, at most `max_rows`; fewer means it is exhausted."""
        from weir._glue import unpack

        return [json.loads(r.value) for r in unpack(call(self._conn.fetch, max_rows))]

    def rows(self, statement: str, *params: Any, chunk: int = 1000) -> Iterator[dict]:
        """Every row of a query, fetched `chunk` at a time."""
        self.query(statement, *params)
        while True:
            rows = self.fetch(chunk)
            yield from rows
            if len(rows) < chunk:
                return


def connect() -> Connection:
    return Connection()
