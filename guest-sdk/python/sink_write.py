# componentize-py looks up the resources of the exported `sink-write` interface in a module
# of this name; the SDK's glue implements them over the connector class.
from weir._glue import Writer as Writer  # noqa: F401
