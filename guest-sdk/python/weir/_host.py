"""The host's imports when running inside weir, or None in plain CPython (unit tests)."""

try:
    from wit_world.imports import http as wit_http, log as wit_log, metrics as wit_metrics
    from wit_world.imports import keys as wit_keys
    from wit_world.imports import types as wit_types
except ModuleNotFoundError as e:  # plain CPython: no component bindings
    if e.name is None or not e.name.startswith("wit_world"):
        raise
    wit_http = wit_keys = wit_log = wit_metrics = wit_types = None
