"""The host's imports when running inside weir, or None in plain CPython (unit tests)."""

from weir._api import ConfigError, FatalError, TransientError

try:
    from wit_world.imports import http as wit_http, log as wit_log, metrics as wit_metrics
    from wit_world.imports import keys as wit_keys, kafka as wit_kafka, kinesis as wit_kinesis
    from wit_world.imports import objects as wit_objects, sql as wit_sql
    from wit_world.imports import types as wit_types
except ModuleNotFoundError as e:  # plain CPython: no component bindings
    if e.name is None or not e.name.startswith("wit_world"):
        raise
    wit_http = wit_keys = wit_kafka = wit_kinesis = wit_log = wit_metrics = None
    wit_objects = wit_sql = wit_types = None


def needs(interface, name: str):
    """The host's `interface`, or a clear error in plain CPython."""
    if interface is None:
        raise RuntimeError(f"weir.{name} needs the weir host; it is not available in plain CPython")
    return interface


def call(function, *args):
    """Calls a host import: its typed error becomes ConfigError, TransientError or
    FatalError, with the host's message."""
    try:
        return function(*args)
    except Exception as e:  # componentize_py_types.Err carrying the host's typed error
        value = getattr(e, "value", None)
        if value is None:
            raise
        raise typed(value) from None


def typed(error) -> Exception:
    message = getattr(error, "value", str(error))
    if isinstance(error, wit_types.Error_Config):
        return ConfigError(message)
    if isinstance(error, wit_types.Error_Transient):
        return TransientError(message)
    return FatalError(message)
