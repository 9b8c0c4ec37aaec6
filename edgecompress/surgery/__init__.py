"""The graph-surgery core shared by every graph-rewriting family."""

from edgecompress.surgery.channels import (  # noqa: F401
    ChannelGraph,
    ChannelGroup,
    channel_groups,
)
from edgecompress.surgery.graph import (  # noqa: F401
    DROP,
    Replacement,
    clone,
    copy_layer,
    find_layers,
    flatten,
    iter_layers,
    layer_weights,
    rebuild,
)
from edgecompress.surgery.report import TransformReport, attach  # noqa: F401,E402
