# componentize-py looks up the resources of the exported `transform-records` interface in a
# module of this name; the SDK's glue implements them over the connector class.
from weir._glue import Transformer as Transformer  # noqa: F401
