"""The Distiller: a tf_keras Model whose ``fit`` trains a student on a teacher's soft targets.

The student is trained on ``alpha * hard + (1 - alpha) * T**2 * soft + feature_weight * hints``:

* ``hard``: the compiled loss (by default sparse categorical cross-entropy) between the labels
  and the student's output: ordinary supervised training;
* ``soft``: a distillation loss (default KL divergence) between the teacher's and the student's
  logits, both divided by the temperature ``T``; for a regression (or binary) output, the mean
  squared error between the teacher's and the student's outputs. A model with several outputs
  sums one such term per output;
* ``hints``: the FitNets loss, a mean squared error between chosen teacher features and the
  matching student features (through a learned 1x1 conv or dense adapter where shapes differ).

References:
    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.
    Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015.
    Beyer et al., "Knowledge distillation: A good teacher is patient and consistent", CVPR 2022
    (the teacher sees the same augmented input as the student; long schedules).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from edgecompress._keras import check_graph_model, keras, model_kind, tf
from edgecompress.distillation import losses as distill_losses
from edgecompress.surgery import find_layers
from edgecompress.tasks import CLASSIFICATION, Task, infer_tasks

# Defaults discussed in the Distiller docstring and BENCHMARKS.md ("Knowledge distillation").
DEFAULT_TEMPERATURE = 4.0
DEFAULT_ALPHA = 0.5
DEFAULT_FEATURE_WEIGHT = 1.0

_TINY = 1e-30  # floor for log(probabilities) when the softmax's logits cannot be recovered


@keras.utils.register_keras_serializable(package="edgecompress")
class Distiller(keras.Model):
    """Train ``student`` to mimic a frozen ``teacher`` (Hinton distillation, FitNets hints).

    The loss minimized by ``fit`` is::

        alpha * hard_loss + (1 - alpha) * T**2 * soft_loss(teacher_logits / T, student_logits / T)
            + feature_weight * mean(hint losses) + student regularization losses

    ``alpha`` weights the **hard-label** loss (the compiled ``loss`` against the labels ``y``);
    ``1 - alpha`` weights the **soft-target** loss against the teacher. ``alpha=1`` is plain
    supervised training of the student (the teacher is ignored); ``alpha=0`` is pure distillation.

    The teacher is frozen: it always runs with ``training=False`` (BatchNorm statistics and dropout
    untouched) and no gradient is applied to it, so its weights are bit-identical after ``fit``.
    The student is trained **in place** (as in Keras 3's Distiller): ``distiller.student`` is the
    model you passed, with trained weights, ready for export. Adapters for feature hints live in
    the Distiller, not in the student.

    Every output is distilled: a classification head by the soft targets above, a regression
    or binary head by the mean squared error to the teacher's output (no temperature: it has no
    softmax to soften; Hinton et al. match logits the same way in the high-temperature limit).
    What each output is comes from ``tasks`` or :func:`edgecompress.tasks.infer_tasks`.

    Models that end in a softmax are handled: the logits are taken from the softmax's input (as
    Keras's own cross-entropy does); where that input cannot be seen (a softmax hidden inside a
    wrapper), ``log(probabilities)`` is used, which equals the logits up to a per-sample constant
    that every loss here ignores.

    ``compile(optimizer, loss=None, metrics=...)``: ``loss`` is the hard-label loss; left as None
    it is sparse categorical cross-entropy, from logits or probabilities as the student outputs.
    ``fit`` logs ``loss`` (the total), ``student_loss`` (hard), ``distillation_loss`` (soft, with the
    ``T**2`` factor), ``feature_loss`` (with hints) and the compiled metrics of the student.
    ``evaluate`` (and so validation) runs the student only: ``loss`` and ``student_loss`` are the
    hard loss, and metrics such as ``val_accuracy`` are the student's, so EarlyStopping and
    ModelCheckpoint monitor the student.

    The defaults (``T=4, alpha=0.5``) come from the MNIST-5k benchmark; BENCHMARKS.md,
    "Knowledge distillation", holds the figures and what they teach (regularize the teacher, not
    the student; distillation and augmentation overlap; function matching needs long schedules).

    Feed a ``tf.data`` pipeline to ``fit`` when you augment: the Distiller runs the teacher on
    each batch, so it labels every new view afresh ("consistent teaching", Beyer et al.).

    Args:
        teacher: a trained tf_keras model (any kind; Sequential or Functional for feature hints).
        student: the tf_keras model to train, with the teacher's output shapes. May be pruned
            (tfmot ``prune_low_magnitude``; add ``UpdatePruningStep`` to the callbacks), QAT
            (tfmot ``quantize_model``) or binary (larq) while it is distilled.
        temperature: softmax temperature ``T > 0`` applied to both logits.
        alpha: weight of the hard-label loss, in [0, 1].
        distillation_loss: ``"kl"``, ``"cross_entropy"``, ``"mse"`` (centred logits), or a loss;
            see :mod:`edgecompress.distillation.losses`.
        feature_pairs: ``[(teacher_layer_name, student_layer_name), ...]`` FitNets hints. Each
            layer's output is matched; when the shapes differ, a 1x1 Conv2D (4-D features with the
            same height and width) or Dense (2-D features) adapter maps the student feature to the
            teacher's channels. Different spatial sizes are an error: pick layers at the same
            resolution (pooling them away would throw out what the hint is meant to teach).
        feature_weight: weight of the mean hint loss (>= 0).
        tasks: optional :class:`edgecompress.tasks.Task` per output (what the recipe runner
            inferred from the labels); default inferred from the teacher's outputs alone (a linear
            output of several units is then taken as logits).
        mixup: ``0`` (off), or the concentration ``c > 0`` of Beyer et al.'s *function matching*:
            each training batch is replaced by mixup images ``lam * x + (1 - lam) * x[perm]``,
            ``lam ~ Beta(c, c)`` per sample, which teacher and student both see (the hard loss
            mixes the two labels with the same ``lam``). The teacher labels images no data set
            holds; it pays off with ``alpha=0``, ``T=1`` and long schedules. Needs a model with
            one image-like input.
        name: model name.

    Raises:
        ValueError: negative or zero ``temperature``, ``alpha`` outside [0, 1], negative
            ``feature_weight`` or ``mixup``, ``mixup`` with a multi-input or multi-output model,
            different teacher/student output shapes or counts, ``tasks`` of the wrong length, an unknown layer name or a spatial size mismatch in
            ``feature_pairs``.
        TypeError: a non-tf_keras model, or a subclassed model with ``feature_pairs``.

    Example:
        >>> distiller = Distiller(teacher, student, temperature=4.0, alpha=0.5)
        >>> distiller.compile("adam", metrics=["accuracy"])
        >>> distiller.fit(x, y, epochs=10, validation_data=(x_val, y_val))
        >>> student = distiller.student   # export this

    References:
        Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.
        Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015.
    """

    def __init__(
        self,
        teacher: keras.Model,
        student: keras.Model,
        temperature: float = DEFAULT_TEMPERATURE,
        alpha: float = DEFAULT_ALPHA,
        distillation_loss="kl",
        feature_pairs=None,
        feature_weight: float = DEFAULT_FEATURE_WEIGHT,
        mixup: float = 0.0,
        tasks=None,
        name: str = "distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        _check_model(teacher, "teacher")
        _check_model(student, "student")
        if not _is_number(temperature) or not temperature > 0:
            raise ValueError(
                f"`temperature` must be a number > 0. Received: temperature={temperature!r}"
            )
        if not _is_number(alpha) or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
        if not _is_number(feature_weight) or not feature_weight >= 0:
            raise ValueError(
                f"`feature_weight` must be a number >= 0. Received: feature_weight={feature_weight!r}"
            )
        if not _is_number(mixup) or not mixup >= 0:
            raise ValueError(f"`mixup` must be a number >= 0 (0 turns it off). Received: mixup={mixup!r}")
        inputs = [len(getattr(m, "inputs", None) or [None]) for m in (teacher, student)]
        if mixup and inputs != [1, 1]:
            raise ValueError("`mixup` needs a teacher and a student with one input each. "
                             f"Received: {inputs[0]} and {inputs[1]} inputs")
        outputs = _check_output_shapes(teacher, student)
        if mixup and outputs > 1:
            raise ValueError(f"`mixup` needs a teacher and a student with one output each. Received: "
                             f"{outputs} outputs")
        tasks = [t if isinstance(t, Task) else Task(**t) for t in tasks] if tasks else infer_tasks(teacher)
        if len(tasks) != outputs:
            raise ValueError(f"`tasks` must hold one task per output ({outputs}). Received: {len(tasks)}")
        self.teacher = teacher
        self.student = student
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.distillation_loss = distill_losses.get(distillation_loss)
        self.feature_weight = float(feature_weight)
        self.mixup = float(mixup)
        self.feature_pairs = [tuple(p) for p in (feature_pairs or [])]
        self.tasks = tasks
        self._outputs = outputs
        self._teacher_probs = _probabilities(teacher, tasks)
        self._student_probs = _probabilities(student, tasks)
        self.adapters = []
        if self.feature_pairs:
            t_model, s_model, self.adapters = _feature_models(teacher, student, self.feature_pairs)
        else:
            t_model, s_model = teacher, student
        # Untracked on purpose: they share every layer with teacher/student.
        object.__setattr__(self, "_views", (t_model, s_model))
        self._trackers = {
            key: keras.metrics.Mean(name=key)
            for key in ("loss", "student_loss", "distillation_loss", "feature_loss")
        }

    # ----------------------------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Compile with the student's hard-label ``loss`` (default: sparse categorical CE)."""
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not self._student_probs[0])
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_compile_config(self):
        if self._is_compiled and hasattr(self, "_compile_config"):
            return self._compile_config.serialize()
        return None

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if isinstance(self.optimizer, keras.optimizers.Optimizer):
            self.optimizer.build(self._train_variables())

    def _train_variables(self):
        return self.student.trainable_variables + [
            v for a in self.adapters if a is not None for v in a.trainable_variables
        ]

    @property
    def metrics(self):
        keys = ["loss", "student_loss", "distillation_loss"]
        if self.feature_pairs:
            keys.append("feature_loss")
        found = [self._trackers[k] for k in keys]
        if self.compiled_metrics is not None:
            found += self.compiled_metrics.metrics
        return found

    # ------------------------------------------------------------------------------------- steps
    def call(self, inputs, training=False):
        """The student's prediction (so ``predict`` and ``evaluate`` see the student)."""
        return self.student(inputs, training=training)

    def soft_loss(self, teacher_logits, student_logits):
        """``T**2 * distillation_loss(teacher_logits / T, student_logits / T)``, batch mean."""
        t = tf.cast(teacher_logits, tf.float32) / self.temperature
        s = tf.cast(student_logits, tf.float32) / self.temperature
        per_sample = _per_sample(self.distillation_loss, t, s)
        return self.temperature**2 * tf.reduce_mean(per_sample)

    def output_loss(self, teacher_out, student_out):
        """The summed distillation term of every output (soft targets or MSE, see the class)."""
        terms = []
        for task, t, s, t_probs, s_probs in zip(self.tasks, teacher_out, student_out, self._teacher_probs,
                                                 self._student_probs, strict=True):
            if task.kind == CLASSIFICATION:
                terms.append(self.soft_loss(_logits(t, t_probs), _logits(s, s_probs)))
            else:
                terms.append(tf.reduce_mean(tf.square(tf.cast(t, tf.float32) - tf.cast(s, tf.float32))))
        return tf.add_n(terms)

    def mix_batch(self, x):
        """Mixup images and their mixing: ``(lam * x + (1 - lam) * x[perm], lam, perm)``."""
        n = tf.shape(x)[0]
        a = tf.random.gamma([n], self.mixup)
        lam = a / (a + tf.random.gamma([n], self.mixup))
        perm = tf.random.shuffle(tf.range(n))
        mix = tf.reshape(tf.cast(lam, x.dtype), [-1] + [1] * (len(x.shape) - 1))
        return mix * x + (1 - mix) * tf.gather(x, perm), lam, perm

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self.mixup:
            x, lam, perm = self.mix_batch(x)
        t_model, s_model = self._views
        n = self._outputs
        t_out = _as_list(t_model(x, training=False))
        t_out = [tf.stop_gradient(t) for t in t_out]
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            s_out = _as_list(s_model(x, training=True))
            s_pred = s_out[0] if n == 1 else s_out[:n]
            # compiled_loss is already scaled by 1 / replicas (gradients are summed across them)
            if self.mixup:
                weight = 1.0 if sample_weight is None else sample_weight
                hard = (self.compiled_loss(y, s_out[0], lam * weight)
                        + self.compiled_loss(tf.gather(y, perm), s_out[0], (1 - lam) * weight))
            else:
                hard = self.compiled_loss(y, s_pred, sample_weight)
            hard = hard * replicas
            soft = self.output_loss(t_out[:n], s_out[:n])
            total = self.alpha * hard + (1.0 - self.alpha) * soft
            if self.feature_pairs:
                hints = self._hint_loss(t_out[n:], s_out[n:])
                total += self.feature_weight * hints
            reg = tf.add_n(self.student.losses) if self.student.losses else 0.0
            total_scaled = (total + reg) / replicas
        variables = self._train_variables()
        grads = tape.gradient(total_scaled, variables)
        self.optimizer.apply_gradients(
            (g, v) for g, v in zip(grads, variables, strict=True) if g is not None
        )
        self._trackers["loss"].update_state(total + reg)
        self._trackers["student_loss"].update_state(hard)
        self._trackers["distillation_loss"].update_state(soft)
        if self.feature_pairs:
            self._trackers["feature_loss"].update_state(hints)
        if self.mixup:  # score against each mixed image's dominant label
            y = tf.where(tf.reshape(lam >= 0.5, [-1] + [1] * (len(y.shape) - 1)), y,
                         tf.gather(y, perm))
        self.compiled_metrics.update_state(y, s_pred, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self.student(x, training=False)
        hard = self.compiled_loss(y, y_pred, sample_weight)
        hard = hard * tf.distribute.get_strategy().num_replicas_in_sync
        for key in ("loss", "student_loss"):
            self._trackers[key].update_state(hard)
        self.compiled_metrics.update_state(y, y_pred, sample_weight)
        names = {"loss", "student_loss"} | {m.name for m in self.compiled_metrics.metrics}
        return {m.name: m.result() for m in self.metrics if m.name in names}

    def _hint_loss(self, t_feats, s_feats):
        terms = []
        for t, s, adapter in zip(t_feats, s_feats, self.adapters, strict=True):
            if adapter is not None:
                s = adapter(s)
            terms.append(tf.reduce_mean(tf.square(tf.cast(t, tf.float32) - tf.cast(s, tf.float32))))
        return tf.add_n(terms) / len(terms)

    # ------------------------------------------------------------------------------- serializing
    def get_config(self):
        return {
            **super().get_config(),  # {} in tf_keras for a subclassed Model; kept for subclasses
            "name": self.name,
            "trainable": self.trainable,
            "teacher": keras.utils.serialize_keras_object(self.teacher),
            "student": keras.utils.serialize_keras_object(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "distillation_loss": distill_losses.serialize(self.distillation_loss),
            "feature_pairs": [list(p) for p in self.feature_pairs],
            "feature_weight": self.feature_weight,
            "mixup": self.mixup,
            "tasks": [dataclasses.asdict(t) for t in self.tasks],
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("teacher", "student"):
            config[key] = keras.utils.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)


# --------------------------------------------------------------------------------------- helpers
def _is_number(x) -> bool:
    """A finite real number: Python or NumPy (``np.float32(2.0)``), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _check_model(model, argument):
    if not isinstance(model, keras.Model):
        check_graph_model(model, argument)  # raises the Keras 3 / not-a-model message
    if model_kind(model) != "subclassed":
        check_graph_model(model, argument)


def _output_shape(model):
    try:
        shape = model.output_shape
    except (AttributeError, RuntimeError):
        return None
    return tuple(shape) if isinstance(shape, tuple) else shape


def _check_output_shapes(teacher, student) -> int:
    """The number of outputs, once teacher and student are found to agree on them."""
    t, s = _output_shape(teacher), _output_shape(student)
    if t is None or s is None:
        return 1  # subclassed model: checked when the step is traced
    t_list, s_list = (x if isinstance(x, list) else [x] for x in (t, s))
    if len(t_list) != len(s_list) or any(a[1:] != b[1:] for a, b in zip(t_list, s_list)):
        raise ValueError(
            "`student` must have the same output shape as `teacher` (as many outputs, each of the same shape). "
            f"Received: teacher output shape {t}, student output shape {s}"
        )
    return len(t_list)


def _probabilities(model, tasks) -> list[bool]:
    """Per output, whether it is probabilities (a softmax), by the rule of :mod:`edgecompress.tasks`."""
    found = infer_tasks(model)
    return [t.kind == CLASSIFICATION and not f.from_logits for t, f in zip(tasks, found)]


def _logits(output, is_probability: bool):
    """Logits of a model output, or log-probabilities when the softmax input is out of sight."""
    if not is_probability and not hasattr(output, "_keras_logits"):
        return output
    logits = getattr(output, "_keras_logits", None)
    if logits is not None:
        return logits
    op = getattr(output, "op", None)
    if not isinstance(output, tf.__internal__.EagerTensor) and op is not None and op.type == "Softmax":
        return op.inputs[0]
    return tf.math.log(tf.maximum(tf.cast(output, tf.float32), _TINY))


def _per_sample(loss, t, s):
    call = getattr(loss, "call", None) if isinstance(loss, keras.losses.Loss) else None
    values = call(t, s) if call is not None else loss(t, s)
    return tf.convert_to_tensor(values)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _feature_models(teacher, student, pairs):
    """Teacher and student views that also output the hinted features, and the adapters."""
    for model, argument in ((teacher, "teacher"), (student, "student")):
        if model_kind(model) == "subclassed":
            raise TypeError(
                f"`feature_pairs` needs a Sequential or Functional `{argument}` to read its "
                f"intermediate layers. Received: subclassed model {type(model).__name__}"
            )
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(n, str) for n in pair):
            raise ValueError(
                "`feature_pairs` must be a list of (teacher_layer_name, student_layer_name). "
                f"Received: {pair!r}"
            )
    t_names = [p[0] for p in pairs]
    s_names = [p[1] for p in pairs]
    t_layers = [_top_level_layer(teacher, n, "teacher") for n in t_names]
    s_layers = [_top_level_layer(student, n, "student") for n in s_names]
    t_feats = [layer.output for layer in t_layers]
    s_feats = [layer.output for layer in s_layers]
    adapters = []
    for (t_name, s_name), t, s in zip(pairs, t_feats, s_feats, strict=True):
        adapters.append(_adapter(t_name, s_name, t.shape, s.shape))
    t_model = keras.Model(teacher.inputs, [teacher.outputs[0], *t_feats], name="teacher_features")
    s_model = keras.Model(student.inputs, [student.outputs[0], *s_feats], name="student_features")
    return t_model, s_model, adapters


def _top_level_layer(model, name, argument):
    find_layers(model, [name], (keras.layers.Layer,), argument=f"feature_pairs ({argument})")
    if name not in [layer.name for layer in model.layers]:
        raise ValueError(
            f"`feature_pairs` ({argument}) must name a top-level layer of the {argument}, not one "
            f"inside a nested model. Received: '{name}'"
        )
    layer = model.get_layer(name)
    if len(layer._inbound_nodes) != 1:
        raise ValueError(
            f"`feature_pairs` ({argument}) must name a layer called once. Received: '{name}', "
            f"called {len(layer._inbound_nodes)} times"
        )
    return layer


def _adapter(t_name, s_name, t_shape, s_shape):
    if t_shape[1:] == s_shape[1:]:
        return None
    if len(t_shape) == 4 and len(s_shape) == 4:
        if t_shape[1:3] != s_shape[1:3]:
            raise ValueError(
                "`feature_pairs` features must have the same height and width (a 1x1 conv "
                f"adapter maps channels only). Received: '{t_name}' {tuple(t_shape)} and "
                f"'{s_name}' {tuple(s_shape)}; pick layers at the same resolution"
            )
        adapter = keras.layers.Conv2D(t_shape[-1], 1, name=f"adapter_{s_name}")
        adapter.build(s_shape)
        return adapter
    if len(t_shape) == 2 and len(s_shape) == 2:
        adapter = keras.layers.Dense(t_shape[-1], name=f"adapter_{s_name}")
        adapter.build(s_shape)
        return adapter
    raise ValueError(
        "`feature_pairs` features must both be 4-D (conv maps) or both 2-D (vectors) when their "
        f"shapes differ. Received: '{t_name}' {tuple(t_shape)} and '{s_name}' {tuple(s_shape)}"
    )
