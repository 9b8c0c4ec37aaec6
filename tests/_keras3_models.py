"""Run by the tests in a subprocess with Keras 3 (TF_USE_LEGACY_KERAS unset).

``python tests/_keras3_models.py OUT_DIR build`` saves Keras 3 models that together use every layer
kind edgecompress.keras3 translates, as ``<name>.keras`` (and some as ``<name>.h5``), with random
weights (BatchNormalization statistics included), plus ``<name>.npz`` holding an input ``x`` and
Keras 3's own prediction ``y`` (a list for several outputs: ``y0``, ``y1``...).

``python tests/_keras3_models.py OUT_DIR predict`` loads every ``*.keras`` in OUT_DIR with Keras 3
and saves its prediction on ``<name>.npz``'s ``x`` as ``<name>.k3.npz``.

The tests import this module only for :func:`run`; Keras 3 is imported in the subprocess alone.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

keras = L = None  # Keras 3 and its layers, set in the subprocess

#: Every Keras 3 activation name the activations model applies (edgecompress's supported list).
ACTIVATIONS = ("elu", "exponential", "gelu", "hard_sigmoid", "hard_silu", "hard_swish",
               "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish", "relu",
               "relu6", "selu", "sigmoid", "silu", "softmax", "softplus", "softsign", "swish",
               "tanh")


def run(out, mode: str) -> None:
    """Run this script with Keras 3 (TF_USE_LEGACY_KERAS unset) on ``out``; raise on failure."""
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run([sys.executable, __file__, str(out), mode], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"Keras 3 subprocess ({mode}) failed:\n{done.stderr[-3000:]}")


def sequential_images():
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        L.Rescaling(0.5, offset=-0.25),
        L.Conv2D(6, 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.DepthwiseConv2D(3, padding="same", activation="hard_silu"),
        L.SeparableConv2D(8, 3, activation="relu6"),
        L.Conv2DTranspose(4, 3, strides=2, padding="same"),
        L.LeakyReLU(negative_slope=0.2),
        L.MaxPooling2D(2),
        L.ZeroPadding2D(1),
        L.AveragePooling2D(2),
        L.UpSampling2D(2),
        L.PReLU(),
        L.ELU(alpha=0.5),
        L.Activation("hard_sigmoid"),
        L.Dropout(0.3),
        L.Flatten(),
        L.Dense(10, activation="gelu"),
        L.LayerNormalization(),
        L.Dense(3),
        L.Softmax(),
    ], name="seq_images")


def functional_branches():
    inp = keras.Input((12, 12, 3), name="image")
    x = L.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.0, 2.0, 0.5])(inp)
    x = L.Conv2D(8, 3, padding="same", use_bias=False)(x)
    x = L.BatchNormalization(center=False)(x)
    a = L.ReLU(max_value=6.0)(x)
    b = L.Activation("swish")(x)
    shared = L.Conv2D(8, 1, name="shared")
    s = L.Add()([shared(a), shared(b)])
    m = L.Multiply()([s, a])
    block = keras.Sequential([keras.Input((12, 12, 8)), L.Conv2D(8, 3, padding="same"),
                              L.BatchNormalization(), L.ReLU()], name="block")
    inner_in = keras.Input((12, 12, 8))
    inner = keras.Model(inner_in, L.Conv2D(4, 1, activation="tanh")(block(inner_in)),
                        name="inner")
    n = inner(m)
    o = (n + 3.0) * (1.0 / 6.0)
    c = L.Concatenate()([o, L.Subtract()([n, o])])
    r = L.Reshape((12, 12 * 8))(c)
    r = L.Reshape((12, 12, 8))(r)
    g = L.GlobalMaxPooling2D()(r)
    h = L.GlobalAveragePooling2D()(L.SpatialDropout2D(0.2)(r))
    out1 = L.Dense(4, activation="softmax", name="cls")(L.Concatenate()([g, h]))
    out2 = L.Dense(1, name="reg")(h)
    return keras.Model(inp, [out1, out2], name="branches")


def functional_conv1d():
    inp = keras.Input((20, 3))
    norm = L.Normalization(axis=-1)
    norm.adapt(np.random.default_rng(1).normal(2.0, 3.0, (64, 20, 3)).astype("float32"))
    x = norm(inp)
    x = L.Conv1D(6, 3, padding="causal", activation="selu")(x)
    x = L.ZeroPadding1D(1)(x)
    x = L.MaxPooling1D(2)(x)
    x = L.AveragePooling1D(2)(x)
    y = L.Conv1D(6, 1, activation="log_sigmoid")(x)
    x = L.Average()([L.Maximum()([x, y]), L.Minimum()([x, y])])
    x = L.GlobalMaxPooling1D()(x) + L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(2, activation="hard_tanh")(x), name="conv1d")


def activations():
    inp = keras.Input((7,))
    return keras.Model(inp, L.Concatenate()([L.Activation(a)(inp) for a in ACTIVATIONS]),
                       name="activations")


def digits_cnn():
    return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu"),
                             L.Flatten(), L.Dense(16, activation="relu"),
                             L.Dense(10, activation="softmax")], name="digits_cnn")


def two_inputs():
    image, side = keras.Input((8, 8, 1), name="image"), keras.Input((3,), name="side")
    x = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, activation="relu")(image))
    x = L.Concatenate()([x, L.Dense(4, activation="tanh")(side)])
    return keras.Model([image, side], L.Dense(2)(x), name="two_inputs")


def lambda_model():
    inp = keras.Input((5,))
    return keras.Model(inp, L.Dense(3)(L.Lambda(lambda t: t * 2.0 + 1.0)(inp)), name="lam")


def mobilenet():
    return keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None,
                                        classes=4)


def mobilenet_v2():
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None,
                                          classes=4)


def mobilenet_v3_small():
    return keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75,
                                               weights=None, classes=4)


MODELS = {"seq_images": sequential_images, "branches": functional_branches,
          "conv1d": functional_conv1d, "two_inputs": two_inputs, "activations": activations, "digits_cnn": digits_cnn,
          "lambda": lambda_model, "mobilenet": mobilenet, "mobilenet_v2": mobilenet_v2,
          "mobilenet_v3_small": mobilenet_v3_small}
H5 = ("seq_images", "branches")


def randomize(model, rng):
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, L.Normalization):  # keeps its adapted statistics
            continue
        for v in layer.weights if not layer._layers else []:
            if "variance" in v.path:
                v.assign(rng.uniform(0.5, 1.5, v.shape).astype(v.dtype))
            elif v.dtype.startswith("float"):
                v.assign((rng.normal(0, 0.3, v.shape)).astype(v.dtype))


def outputs(model, x) -> dict:
    y = model(x, training=False)
    return {f"y{i}": np.asarray(v) for i, v in enumerate(y if isinstance(y, list) else [y])}


def inputs(npz_path):
    """The model input(s) saved beside a file: ``x0`` alone, or the list ``x0, x1, ...``."""
    data = np.load(npz_path)
    xs = [data[f"x{i}"] for i in range(sum(k.startswith("x") for k in data.files))]
    return xs[0] if len(xs) == 1 else xs


def build(out: Path):
    rng = np.random.default_rng(0)
    for name, make in MODELS.items():
        model = make()
        randomize(model, rng)
        xs = [rng.normal(0, 2, (4, *t.shape[1:])).astype("float32") for t in model.inputs]
        x = xs[0] if len(xs) == 1 else xs
        np.savez(out / f"{name}.npz", **{f"x{i}": v for i, v in enumerate(xs)}, **outputs(model, x))
        model.save(out / f"{name}.keras")
        if name in H5:
            model.save(out / f"{name}.h5")


def predict(out: Path):
    for path in sorted(out.glob("*.keras")):
        model = keras.saving.load_model(path)
        np.savez(path.with_suffix(".k3.npz"), **outputs(model, inputs(path.with_suffix(".npz"))))


if __name__ == "__main__":
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
    import keras

    L = keras.layers
    {"build": build, "predict": predict}[sys.argv[2]](Path(sys.argv[1]))
