"""The graph-surgery core shared by every graph-rewriting family."""

from edgecompress.surgery.channels import (  # noqa: F401
    ChannelGraph,
    ChannelGroup,
    channel_groups,
)
from edgecompress.surgery.dense_conv import (  # noqa: F401
    conv_counterpart,
    dense_as_conv,
    register_conv_counterpart,
    why_not_as_conv,
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
from edgecompress.surgery.select import unwrap  # noqa: F401,E402
