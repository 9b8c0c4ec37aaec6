"""edgecompress: compress a trained Keras CNN and take it to a phone or a microcontroller.

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads, so that
``tf.keras`` is Keras 2 (tf_keras), the Keras that tfmot and larq need. If TensorFlow was
already imported with Keras 3, the import fails with an ImportError that says what to do.
"""

from edgecompress._keras import keras, model_kind, tf  # noqa: F401  (guard runs first)
from edgecompress.measure import Measurement, measure  # noqa: F401

__version__ = "0.1.0"

__all__ = ["keras", "tf", "model_kind", "measure", "Measurement", "__version__"]
