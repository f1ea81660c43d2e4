# componentize-py looks up the resources of the exported `batch-read` interface in a module
# of this name; the SDK's glue implements them over the connector class.
from weir._glue import Reader as Reader  # noqa: F401
