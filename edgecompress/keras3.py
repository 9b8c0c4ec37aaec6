"""Keras 3 files in: translate a Keras 3 ``.keras`` or ``.h5`` file into an equivalent tf_keras model.

Since TF 2.16, ``import keras`` is Keras 3, whose files tf_keras refuses (and whose models tfmot and
larq cannot take). This module reads such a file with ``zipfile``, ``json`` and ``h5py`` only, never
importing Keras 3 into the process that runs tfmot and larq:

- ``.keras``: ``metadata.json`` (the Keras version), ``config.json`` (Keras 3's serialization:
  ``module``/``class_name``/``config``/``registered_name`` objects, ``DTypePolicy`` dtypes,
  ``inbound_nodes`` as ``args``/``kwargs`` with ``__keras_tensor__`` histories) and
  ``model.weights.h5`` (one group per layer, named by the layer's *class* with ``_N`` suffixes
  within each container, ``vars/0..n`` in the layer's variable order).
- ``.h5`` written by Keras 3: the same config in ``model_config`` and weights under
  ``model_weights/<layer name>`` in ``weight_names`` order.

Sequential and Functional graphs, shared layers (several inbound nodes), nested models and the
``keras.ops`` arithmetic that Keras 3 applications put in the graph (``x + 3.0``, ``x * a``) are
rebuilt from tf_keras built-in layers. Neither Keras nor tf_keras reads the other's files; this
module is that bridge, written by hand against ``keras/src/saving/saving_lib.py``,
``serialization_lib.py`` and ``keras/src/models/functional.py``.
"""

from __future__ import annotations

import base64
import inspect
import io
import json
import marshal
import re
import types
import zipfile
from pathlib import Path

import numpy as np

from edgecompress._errors import UsageError
from edgecompress._keras import keras, tf

#: Keras 3 layer classes this module translates (plus nested Sequential/Functional models).
SUPPORTED_LAYERS = (
    "InputLayer",
    "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose",
    "Dense", "BatchNormalization", "LayerNormalization",
    "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "Flatten", "Reshape", "Dropout", "SpatialDropout2D",
    "Add", "Subtract", "Multiply", "Concatenate", "Average", "Maximum", "Minimum",
    "ZeroPadding1D", "ZeroPadding2D", "UpSampling2D", "Rescaling", "Normalization",
)
#: ``keras.ops`` operations that appear as graph nodes; with a constant they become Rescaling.
SUPPORTED_OPS = ("Add", "Subtract", "Multiply", "Divide", "TrueDivide")
_MODELS = ("Sequential", "Functional", "Model")
#: Keras 3 option names that tf_keras spells differently.
RENAMED_OPTIONS = {"LeakyReLU": {"negative_slope": "alpha"}}
# Options every tf_keras layer takes through **kwargs.
_BASE_OPTIONS = {"name", "trainable", "dtype", "input_shape", "batch_input_shape", "batch_size",
                 "input_dim", "activity_regularizer", "autocast"}
# Keras 3 options that tf_keras's layer lacks but whose value here is what tf_keras does anyway.
_DEFAULTS = {("data_format", "channels_last")}
#: Keras 3 activations that tf_keras computes identically (checked on [-8, 8], max diff 0).
SAME_ACTIVATIONS = {
    "elu", "exponential", "gelu", "leaky_relu", "linear", "log_softmax", "mish", "relu", "relu6",
    "selu", "sigmoid", "silu", "softmax", "softplus", "softsign", "swish", "tanh",
}


# Keras 3 activations that tf_keras lacks or defines differently (tf_keras's hard_sigmoid is
# clip(0.2 x + 0.5); Keras 3's is relu6(x + 3) / 6), with Keras 3's definitions.
@keras.utils.register_keras_serializable(package="edgecompress")
def keras3_hard_sigmoid(x):
    """Keras 3's ``hard_sigmoid``: ``relu6(x + 3) / 6``."""
    return tf.nn.relu6(x + 3.0) / 6.0


@keras.utils.register_keras_serializable(package="edgecompress")
def keras3_hard_silu(x):
    """Keras 3's ``hard_silu`` (``hard_swish``): ``x * relu6(x + 3) / 6``."""
    return x * tf.nn.relu6(x + 3.0) / 6.0


@keras.utils.register_keras_serializable(package="edgecompress")
def keras3_hard_tanh(x):
    """Keras 3's ``hard_tanh``: ``clip(x, -1, 1)``."""
    return tf.clip_by_value(x, -1.0, 1.0)


@keras.utils.register_keras_serializable(package="edgecompress")
def keras3_log_sigmoid(x):
    """Keras 3's ``log_sigmoid``: ``-softplus(-x)``."""
    return -tf.nn.softplus(-x)


#: Keras 3 activations run as the registered functions above.
TRANSLATED_ACTIVATIONS = {
    "hard_sigmoid": "edgecompress>keras3_hard_sigmoid",
    "hard_silu": "edgecompress>keras3_hard_silu",
    "hard_swish": "edgecompress>keras3_hard_silu",
    "hard_tanh": "edgecompress>keras3_hard_tanh",
    "log_sigmoid": "edgecompress>keras3_log_sigmoid",
}
#: Keras 3 activation names this module translates.
SUPPORTED_ACTIVATIONS = tuple(sorted(SAME_ACTIVATIONS | set(TRANSLATED_ACTIVATIONS)))


class TranslationError(UsageError):
    """A Keras 3 file that cannot be translated; the message names the argument and the file."""


def first_line(err) -> str:
    """The first line of an error message (at most 200 characters), for one-line errors."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def is_keras3_version(version) -> bool:
    """True for a ``keras_version`` string written by Keras 3."""
    return str(version or "").startswith("3")


def load_keras3(path, argument: str = "model", unsafe: bool = False,
                custom_objects: dict | None = None) -> keras.Model:
    """Translate the Keras 3 file at ``path`` into an equivalent tf_keras model.

    Args:
        path: a ``.keras`` or ``.h5`` file saved by Keras 3.
        argument: the argument name used in error messages.
        unsafe: allow Lambda layers (runs Python code stored in the file).
        custom_objects: tf_keras classes for custom layers, by their Keras 3 registered name.

    Returns:
        A tf_keras model whose outputs equal the Keras 3 model's; its attribute
        ``_edgecompress_translated_from`` holds ``"Keras <version>"``.

    Raises:
        TranslationError: a corrupt file, a layer or option with no tf_keras equivalent (named,
            with its class and the supported list), or weights whose shapes don't match.
    """
    path = Path(path)
    translator = _Translator(path, argument, unsafe, custom_objects or {})
    if path.suffix == ".keras":
        model, version = translator.from_zip()
    else:
        model, version = translator.from_h5()
    model._edgecompress_translated_from = f"Keras {version}"
    return model


class _Translator:
    def __init__(self, path: Path, argument: str, unsafe: bool, custom_objects: dict):
        self.path, self.argument, self.unsafe, self.custom_objects = (
            path, argument, unsafe, custom_objects)

    def fail(self, what: str):
        return TranslationError(f"`{self.argument}` {what}. Received: {self.path}")

    # --- files -------------------------------------------------------------------------------
    def from_zip(self):
        import h5py

        try:
            with zipfile.ZipFile(self.path) as archive:
                names = set(archive.namelist())
                meta = json.loads(archive.read("metadata.json"))
                config = json.loads(archive.read("config.json"))
                weights = (archive.read("model.weights.h5")
                           if "model.weights.h5" in names else None)
        except (zipfile.BadZipFile, json.JSONDecodeError, OSError, KeyError, EOFError) as err:
            raise self.fail(f"is not a valid Keras 3 .keras file ({first_line(err)})") from None
        if weights is None:
            other = sorted(n for n in names if n.startswith("model.weights"))
            found = f"it holds {other}" if other else "it has no weights"
            raise self.fail(f"is a Keras 3 .keras file without model.weights.h5 ({found})")
        model = self.build(config)
        try:
            store = h5py.File(io.BytesIO(weights), "r")
        except OSError as err:
            raise self.fail(f"has a corrupt model.weights.h5 ({first_line(err)})") from None
        with store:
            self.assign_zip(model, config, store)
        return model, meta.get("keras_version")

    def from_h5(self):
        import h5py

        try:
            with h5py.File(self.path, "r") as h5:
                config = json.loads(_text(h5.attrs["model_config"]))
                version = _text(h5.attrs.get("keras_version", "3"))
                model = self.build(config)
                if "model_weights" not in h5:
                    raise self.fail("is a Keras 3 .h5 file without model_weights")
                self.assign_h5(model, h5["model_weights"])
        except (OSError, KeyError, json.JSONDecodeError) as err:
            raise self.fail(f"is not a valid Keras 3 .h5 file ({first_line(err)})") from None
        return model, version

    # --- graphs ------------------------------------------------------------------------------
    def build(self, entry: dict) -> keras.Model:
        class_name = entry.get("class_name")
        config = entry.get("config") or {}
        if class_name == "Sequential":
            return self.sequential(config)
        if class_name in _MODELS and "layers" in config:
            return self.functional(config)
        raise self.fail(
            f"holds a model of class {class_name} with no layer graph in its config (a subclassed "
            "Keras 3 model); only Sequential and Functional models can be translated. Rebuild it "
            "with keras.Input + layer calls, or as keras.Sequential")

    def sequential(self, config: dict) -> keras.Model:
        model = keras.Sequential(name=config.get("name"))
        for entry in config["layers"]:
            if entry.get("class_name") == "InputLayer":
                model.add(self.input(entry))
            else:
                model.add(self.layer(entry))
        if not model.built:
            shape = (config.get("build_input_shape")
                     or (config.get("build_config") or {}).get("input_shape"))
            if shape is None:
                raise self.fail(f"holds a Sequential model ({config.get('name')!r}) that was "
                                "never built; give it a keras.Input in Keras 3 and save again")
            model.build(tuple(shape))
        return model

    def functional(self, config: dict) -> keras.Model:
        tensors = {}
        pending = []
        for entry in config["layers"]:
            if entry.get("class_name") == "InputLayer":
                tensors[(entry["name"], 0, 0)] = self.input(entry)
            else:
                pending += [(entry, i, node) for i, node in enumerate(entry["inbound_nodes"])]
        made, done = {}, {}
        while pending:
            ready = [item for item in pending if done.get(item[0]["name"], 0) == item[1]
                     and _histories(item[2]) <= tensors.keys()]
            if not ready:
                missing = sorted({h for _, _, node in pending for h in _histories(node)}
                                 - tensors.keys())
                raise self.fail(f"has a graph whose inputs cannot be resolved (missing {missing})")
            for entry, index, node in ready:
                name = entry["name"]
                args, kwargs = _node_call(node, tensors)
                if _is_op(entry):  # one layer per call: each holds its own constant
                    call = self.op(entry, index, node)
                    inputs = [a for a in args if _is_tensor(a)]
                    args, kwargs = ([inputs] if len(inputs) > 1 else inputs), {}
                else:
                    if name not in made:
                        made[name] = self.layer(entry)
                    call = made[name]
                out = call(*args, **kwargs)
                for t, tensor in enumerate(tf.nest.flatten(out)):
                    tensors[(name, index, t)] = tensor
                done[name] = index + 1
                pending.remove((entry, index, node))

        def pick(spec):
            spec = _history_list(spec)
            got = [tensors[h] for h in spec]
            return got[0] if len(got) == 1 else got

        return keras.Model(pick(config["input_layers"]), pick(config["output_layers"]),
                           name=config.get("name"))

    def input(self, entry: dict):
        config = entry["config"]
        shape = config.get("batch_shape") or config.get("batch_input_shape")
        if shape is None:
            raise self.fail(f"has an InputLayer ({entry.get('name')!r}) without batch_shape")
        if config.get("sparse") or config.get("ragged"):
            raise self.fail(f"has a sparse or ragged InputLayer ({config.get('name')!r}); only "
                            "dense inputs can be translated")
        return keras.Input(batch_shape=tuple(shape), dtype=_value(config.get("dtype")) or None,
                           name=config.get("name"))

    # --- layers ------------------------------------------------------------------------------
    def layer(self, entry: dict):
        class_name = entry.get("class_name")
        name = entry.get("config", {}).get("name", entry.get("name"))
        if not _is_builtin(entry):
            return self.custom(entry, name)
        if class_name in _MODELS:
            return self.build(entry)
        if class_name == "Lambda":
            return self.lambda_layer(entry, name)
        if class_name not in SUPPORTED_LAYERS:
            raise self.fail(
                f"has layer {name!r} of class {class_name}, which has no tf_keras translation "
                f"here. Supported: {', '.join(SUPPORTED_LAYERS)}, and nested Sequential/"
                "Functional models")
        cls = getattr(keras.layers, class_name)
        config = self.options(entry, cls, RENAMED_OPTIONS.get(class_name, {}))
        return cls.from_config(config)

    def options(self, entry: dict, cls, renames: dict) -> dict:
        name = entry.get("config", {}).get("name")
        accepted = _accepted_options(cls)
        out = {}
        for key, value in entry["config"].items():
            key = renames.get(key, key)
            if key == "activation":
                value = self.activation(value, name, entry.get("class_name"))
            else:
                value = _value(value)
            if key not in accepted:
                if value in (None, False, "", [], {}) or (key, value) in _DEFAULTS:
                    continue
                raise self.fail(
                    f"has layer {name!r} of class {entry.get('class_name')} with option "
                    f"{key}={value!r}, which tf_keras's {cls.__name__} does not have")
            out[key] = value
        return out

    def activation(self, value, name, class_name):
        if isinstance(value, str):
            if value in SAME_ACTIVATIONS:
                return value
            if value in TRANSLATED_ACTIVATIONS:
                return TRANSLATED_ACTIVATIONS[value]
        registered = value.get("registered_name") if isinstance(value, dict) else None
        if registered and (registered in self.custom_objects
                           or keras.saving.get_registered_object(registered) is not None):
            return registered
        raise self.fail(
            f"has layer {name!r} of class {class_name} with activation {value!r}, which has no "
            f"tf_keras translation here. Supported: {', '.join(SUPPORTED_ACTIVATIONS)}")

    def op(self, entry: dict, index: int, node: dict):
        """A ``keras.ops`` node as a tf_keras layer: Rescaling with a constant, else a merge."""
        class_name, name = entry["class_name"], entry["name"]
        name = name if len(entry["inbound_nodes"]) == 1 else f"{name}_{index}"
        args = node["args"]
        constants = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
        if class_name not in SUPPORTED_OPS or len(args) != 2 or node.get("kwargs"):
            raise self.fail(
                f"has operation {name!r} ({entry.get('module')}.{class_name}) with no tf_keras "
                f"translation here. Supported operations: {', '.join(SUPPORTED_OPS)} of two "
                "tensors or a tensor and a number")
        if not constants:
            merge = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply"}.get(class_name)
            if merge is None:
                raise self.fail(f"has operation {name!r} ({class_name}) of two tensors, which "
                                "has no tf_keras layer; supported: Add, Subtract, Multiply")
            return getattr(keras.layers, merge)(name=name)
        c = float(constants[0])
        tensor_first = not isinstance(args[0], int | float)
        if class_name == "Add":
            scale, offset = 1.0, c
        elif class_name == "Subtract":
            scale, offset = (1.0, -c) if tensor_first else (-1.0, c)
        elif class_name == "Multiply":
            scale, offset = c, 0.0
        elif tensor_first:
            scale, offset = 1.0 / c, 0.0
        else:
            raise self.fail(f"has operation {name!r} (a number divided by a tensor), which has "
                            "no tf_keras layer")
        return keras.layers.Rescaling(scale, offset, name=name)

    def custom(self, entry: dict, name):
        class_name = entry.get("class_name")
        registered = entry.get("registered_name") or class_name
        cls = self.custom_objects.get(registered) or keras.saving.get_registered_object(registered)
        if cls is None:
            raise self.fail(
                f"has layer {name!r} of class {class_name} (registered as {registered!r}), a "
                "custom Keras 3 layer with no tf_keras equivalent. Register a tf_keras class "
                f"under that name (custom_objects={{{registered!r}: ...}}) or rebuild the model "
                f"from supported layers: {', '.join(SUPPORTED_LAYERS)}")
        return cls.from_config(self.options(entry, cls, {}))

    def lambda_layer(self, entry: dict, name):
        if not self.unsafe:
            raise self.fail(f"holds a Lambda layer ({name!r}), whose Python code would run on "
                            "load; refusing. Rebuild it without Lambda, or pass --unsafe if you "
                            "trust the file")
        config = dict(entry["config"])
        spec = config.get("function") or {}
        if not (isinstance(spec, dict) and spec.get("class_name") == "__lambda__"):
            raise self.fail(f"holds a Lambda layer ({name!r}) whose function {spec!r} is not a "
                            "Python lambda; only lambdas can be translated")
        fn = _load_lambda(spec["config"])
        output_shape = config.get("output_shape")
        return keras.layers.Lambda(fn, output_shape=None if isinstance(output_shape, dict)
                                   else output_shape, arguments=config.get("arguments") or {},
                                   name=name)

    # --- weights -----------------------------------------------------------------------------
    def assign_zip(self, model, entry: dict, group) -> None:
        """Set the weights of ``model`` from the Keras 3 store ``group`` (the h5 root or a layer)."""
        children = group["layers"] if "layers" in group else {}
        by_name = {}
        for key in children:
            vars_group = children[key].get("vars")
            if vars_group is not None and "name" in vars_group.attrs:
                by_name[_text(vars_group.attrs["name"])] = children[key]
        used = {}
        for layer_entry in entry["config"]["layers"]:
            if _is_op(layer_entry):
                continue
            key = unique_name(snake_case(layer_entry["class_name"]), used)
            name = layer_entry["config"].get("name", layer_entry.get("name"))
            stored = by_name.get(name)
            if stored is None:
                stored = children[key] if key in children else None
            if layer_entry.get("class_name") == "InputLayer":
                continue
            layer = model.get_layer(name)
            if isinstance(layer, keras.Model):
                if stored is None:
                    raise self.fail(f"has no weights for nested model {name!r}")
                self.assign_zip(layer, layer_entry, stored)
                continue
            arrays = []
            if stored is not None and "vars" in stored:
                arrays = [np.asarray(stored["vars"][str(i)]) for i in range(len(stored["vars"]))]
            self.set_weights(layer, list(layer.weights), arrays, name)

    def assign_h5(self, model, group) -> None:
        for layer in model.layers:
            targets = layer.trainable_weights + layer.non_trainable_weights
            stored = group[layer.name] if layer.name in group else None
            names = [_text(n) for n in stored.attrs.get("weight_names", [])] if stored else []
            self.set_weights(layer, targets, [np.asarray(stored[n]) for n in names], layer.name)

    def set_weights(self, layer, targets, arrays, name) -> None:
        expected = [tuple(v.shape) for v in targets]
        found = [tuple(a.shape) for a in arrays]
        if expected != found:
            raise self.fail(
                f"has weights that don't match its config: layer {name!r} "
                f"({type(layer).__name__}) needs shapes {expected}, the file holds {found}")
        for variable, array in zip(targets, arrays):
            variable.assign(array.astype(variable.dtype.as_numpy_dtype))
        if arrays and hasattr(layer, "finalize_state"):  # Normalization derives its tensors
            layer.finalize_state()


def _is_tensor(value) -> bool:
    return tf.is_tensor(value) or hasattr(value, "_keras_history")


def _is_builtin(entry: dict) -> bool:
    module = entry.get("module")
    class_name = entry.get("class_name") or ""
    if module is None:  # Keras 3's .h5 (legacy form): custom classes are named "package>Class"
        return ">" not in class_name
    registered = entry.get("registered_name")
    return (module == "keras" or module.startswith("keras.")) and registered in (None, class_name)


def _is_op(entry: dict) -> bool:
    module = entry.get("module")
    if module is None:  # in a Keras 3 .h5, an operation's config holds its name only
        return entry.get("class_name") in SUPPORTED_OPS and set(entry.get("config", {})) == {"name"}
    return module.startswith("keras.src.ops")


def _accepted_options(cls) -> set:
    names = set(_BASE_OPTIONS)
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= set(inspect.signature(klass.__init__).parameters)
    return names - {"self", "args", "kwargs"}


def _histories(node) -> set:
    found = set()

    def walk(value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                found.add(tuple(value["config"]["keras_history"]))
            else:
                for item in value.values():
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return found


def _node_call(node: dict, tensors: dict):
    def resolve(value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                return tensors[tuple(value["config"]["keras_history"])]
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    kwargs = {k: resolve(v) for k, v in (node.get("kwargs") or {}).items()
              if not (k == "mask" and v is None)}
    return [resolve(a) for a in node.get("args", [])], kwargs


def _history_list(spec) -> list[tuple]:
    if spec and isinstance(spec[0], str):
        return [tuple(spec)]
    return [tuple(s) for s in spec]


def _value(value):
    """A Keras 3 config value in tf_keras's form (dtype policies as names, objects legacy-style)."""
    if isinstance(value, list):
        return [_value(v) for v in value]
    if not isinstance(value, dict) or "class_name" not in value:
        return value
    class_name, config = value["class_name"], value.get("config")
    if class_name in ("DTypePolicy", "FloatDTypePolicy"):
        return config["name"]
    if class_name in ("__tuple__", "__numpy__", "__tensor__"):
        return config["value"]
    module = value.get("module") or ""
    kind = module.rsplit(".", 1)[-1]
    base = {"initializers": keras.initializers, "regularizers": keras.regularizers,
            "constraints": keras.constraints}.get(kind)
    if base is not None and hasattr(base, class_name):
        accepted = _accepted_options(getattr(base, class_name))
        kept = {k: _value(v) for k, v in (config or {}).items()
                if k in accepted or v not in (None, False)}
        return {"class_name": class_name, "config": kept}
    return value


def _load_lambda(spec: dict):
    code = marshal.loads(base64.b64decode(spec["code"]))
    closure = tuple(types.CellType(v) for v in spec.get("closure") or ()) or None
    defaults = tuple(spec["defaults"]) if spec.get("defaults") else None
    return types.FunctionType(code, {"tf": tf}, code.co_name, defaults, closure)


def snake_case(name: str) -> str:
    """Keras 3's ``to_snake_case`` (``keras/src/utils/naming.py``): weight groups' class names."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(name: str, used: dict) -> str:
    """``name``, or ``name_N`` for its N-th repeat in one container (``saving_lib``'s rule)."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


