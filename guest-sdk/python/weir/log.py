"""Logs that land in the host's log, tagged with tenant, pipeline and plugin:
`weir.log.info("read page", page=3)`. Outside weir they go to stderr."""

import sys

from weir._host import wit_log


def _emit(level: str, message: str, fields: dict) -> None:
    pairs = [(k, str(v)) for k, v in fields.items()]
    if wit_log is None:
        print(f"{level.upper()} {message} {pairs}", file=sys.stderr)
    else:
        wit_log.log(getattr(wit_log.Level, level.upper()), message, pairs)


def trace(message: str, **fields) -> None:
    _emit("trace", message, fields)


def debug(message: str, **fields) -> None:
    _emit("debug", message, fields)


def info(message: str, **fields) -> None:
    _emit("info", message, fields)


def warn(message: str, **fields) -> None:
    _emit("warn", message, fields)


def error(message: str, **fields) -> None:
    _emit("error", message, fields)
