# componentize-py looks up the resources of the exported `stream-read` interface in a module
# of this name; the SDK's glue implements them over the connector class.
from weir._glue import Stream as Stream  # noqa: F401
