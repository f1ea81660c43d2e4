"""http-source: pages through a JSON REST API, incrementally.

Each run asks for the records changed since the last committed checkpoint (`cursor_param`
= the largest `cursor_field` seen so far), page by page, until a page comes back empty or
short. Within a run the checkpoint also keeps the page reached, so a run killed half-way
resumes at that page with the same `since` rather than skipping records that share a
cursor value with the last one delivered.
"""

import json
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

import weir


class HttpSource(weir.BatchSource):
    name = "http-source"
    version = "0.1.0"
    description = "Pages through a JSON REST API, incrementally by a cursor field."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "description": "The collection's URL (http:// or https://)."},
            "records": {
                "type": "string",
                "default": "",
                "description": "Dotted path to the array of records in a response; empty: the body is the array.",
            },
            "page_param": {"type": "string", "default": "page"},
            "first_page": {"type": "integer", "default": 1},
            "page_size_param": {"type": "string", "description": "Query parameter for the page size."},
            "page_size": {"type": "integer", "minimum": 1, "description": "A shorter page is the last one."},
            "cursor_field": {"type": "string", "description": "Record field that grows with each change (e.g. updated_at)."},
            "cursor_param": {"type": "string", "description": "Query parameter that asks for records after a cursor value."},
            "key_field": {"type": "string", "description": "Record field to use as the record key."},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "timeout_ms": {"type": "integer", "minimum": 1},
        },
    }

    @classmethod
    def check(cls, config):
        if bool(config.get("cursor_field")) != bool(config.get("cursor_param")):
            raise weir.ConfigError("cursor_field and cursor_param go together")
        if urlsplit(config["url"]).scheme not in ("http", "https"):
            raise weir.ConfigError(f"url `{config['url']}` is not http:// or https://")

    def __init__(self, config, checkpoint):
        self.check(config)
        self.config = config
        self.first = config.get("first_page", 1)
        checkpoint = checkpoint or {}
        self.since = checkpoint.get("since")
        self.page = checkpoint.get("page", self.first)
        # Records of `page` already delivered: a page larger than the batch asked for is
        # handed out over several batches, and a resumed run skips what went before.
        self.taken = checkpoint.get("taken", 0)
        self.seen_max = checkpoint.get("max", self.since)
        self.pending = None
        self.last_page = False
        self.done = False

    def next(self, max_records):
        if self.done:
            return None
        if self.pending is None:
            items = self.fetch(self.page)
            size = self.config.get("page_size")
            self.last_page = not items or (size is not None and len(items) < size)
            field = self.config.get("cursor_field")
            if field:
                for item in items:
                    value = item.get(field) if isinstance(item, dict) else None
                    if value is None:
                        raise weir.FatalError(f"a record has no `{field}`: {json.dumps(item)[:200]}")
                    if self.seen_max is None or value > self.seen_max:
                        self.seen_max = value
            if not items and self.seen_max == self.since and self.page == self.first:
                self.done = True
                return None  # nothing new at all
            weir.metrics.counter_add("pages", 1)
            self.pending = items[self.taken :]
        out, self.pending = self.pending[:max_records], self.pending[max_records:]
        self.taken += len(out)
        if self.pending:
            checkpoint = {"since": self.since, "page": self.page, "taken": self.taken, "max": self.seen_max}
        else:
            self.page, self.taken, self.pending = self.page + 1, 0, None
            if self.last_page:
                self.done = True
                # The whole change set is delivered: the next run asks only for what is newer.
                checkpoint = {"since": self.seen_max}
            else:
                checkpoint = {"since": self.since, "page": self.page, "max": self.seen_max}
        return weir.Batch([self.record(item) for item in out], checkpoint=checkpoint)

    def record(self, item):
        key_field = self.config.get("key_field")
        value = json.dumps(item, separators=(",", ":")).encode()
        if key_field and isinstance(item, dict) and item.get(key_field) is not None:
            return weir.Record(value, key=str(item[key_field]).encode())
        return value

    def fetch(self, page):
        c = self.config
        params = [(c.get("page_param", "page"), str(page))]
        if c.get("page_size_param") and c.get("page_size"):
            params.append((c["page_size_param"], str(c["page_size"])))
        if c.get("cursor_param") and self.since is not None:
            params.append((c["cursor_param"], str(self.since)))
        parts = urlsplit(c["url"])
        query = urlencode(parse_qsl(parts.query) + params)
        url = urlunsplit(parts._replace(query=query))
        r = weir.http.get(url, headers=c.get("headers"), timeout_ms=c.get("timeout_ms"))
        if r.status == 429 or r.status >= 500:
            raise weir.TransientError(f"GET {url}: HTTP {r.status}")
        if not 200 <= r.status < 300:
            raise weir.FatalError(f"GET {url}: HTTP {r.status}: {r.body[:200]!r}")
        try:
            body = r.json()
        except ValueError as e:
            raise weir.FatalError(f"GET {url}: the response is not JSON: {e}")
        for part in filter(None, c.get("records", "").split(".")):
            if not isinstance(body, dict) or part not in body:
                raise weir.FatalError(f"GET {url}: no `{c.get('records')}` in the response")
            body = body[part]
        if not isinstance(body, list):
            raise weir.FatalError(f"GET {url}: `{c.get('records') or 'the body'}` is not an array")
        weir.log.debug("page", url=url, records=len(body))
        return body


Connector, BatchRead = weir.export(HttpSource)
