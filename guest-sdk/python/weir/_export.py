"""`export`: binds a connector class to the component's exports."""

from weir._api import BatchSource, Sink, StreamSource, Transform

# The one connector this component exports; the resource modules (`batch_read`,
# `stream_read`, `sink_write`, `transform_records`, which componentize-py looks up by
# interface name) read it.
exported = None


def export(cls):
    """Makes `cls` the component's connector. Returns the classes componentize-py looks for
    in the app module: `Connector, BatchRead = weir.export(MySource)` (or `StreamRead`,
    `SinkWrite`, `TransformRecords`). In plain CPython it only registers the class and returns placeholders."""
    global exported
    if not issubclass(cls, (BatchSource, StreamSource, Sink, Transform)):
        raise TypeError(f"{cls.__name__} is not a weir.BatchSource, StreamSource, Sink or Transform")
    exported = cls
    from weir._host import wit_types

    if wit_types is None:
        return None, None
    from weir import _glue

    if issubclass(cls, BatchSource):
        return _glue.Connector, _glue.BatchRead
    if issubclass(cls, StreamSource):
        return _glue.Connector, _glue.StreamRead
    if issubclass(cls, Transform):
        return _glue.Connector, _glue.TransformRecords
    return _glue.Connector, _glue.SinkWrite
