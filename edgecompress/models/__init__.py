"""Reference and lightweight backbones, all plain tf_keras Functional models."""

from edgecompress.models.dscnn import ds_cnn  # noqa: F401
from edgecompress.models.lenet import lenet5, lenet_300_100  # noqa: F401
from edgecompress.models.mobilenet import mobilenet_v2  # noqa: F401
from edgecompress.models.resnet import resnet8  # noqa: F401
from edgecompress.models.shufflenet import ChannelShuffle, ChannelSplit, shufflenet_v2  # noqa: F401
from edgecompress.models.small import small_cnn  # noqa: F401

#: The builders ``swap_backbone`` may name; each takes ``input_shape`` and ``num_classes``.
BACKBONES = ("lenet5", "lenet_300_100", "mobilenet_v2", "resnet8", "shufflenet_v2", "small_cnn")

__all__ = [
    "BACKBONES",
    "ds_cnn",
    "lenet5",
    "lenet_300_100",
    "mobilenet_v2",
    "resnet8",
    "shufflenet_v2",
    "small_cnn",
    "ChannelShuffle",
    "ChannelSplit",
]
