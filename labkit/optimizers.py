"""Per-group learning rates for any Keras 3 optimizer, like PyTorch's parameter groups (no TensorFlow Addons).

`GroupedOptimizer` wraps one optimizer (Adam, SGD, AdamW, …) and gives chosen groups of variables their own
learning rate, e.g. a pretrained encoder at 1e-4 and a fresh decoder at 1e-3. Each group gets a copy of the wrapped
optimizer that differs only in its learning rate, with its own slots (Adam's moments) and step counter, as PyTorch
keeps per-parameter state; the variables in no group use the wrapped optimizer itself. A group whose learning rate
is 0 is frozen: its variables are never touched, so they stay bit-identical (no decay, no momentum, no NaN leak).
A group's learning rate may also be a Keras `LearningRateSchedule` (e.g. `labkit.training.learning_rate_schedule`'s
warm-up + cosine), which its copy follows step by step.

Variables are matched to groups by `keras.Variable.path` (e.g. ``"block_1_expand/kernel"``), which a model rebuilt
from its config reproduces, so a saved ``model.keras`` reloads with its optimizer state through plain
`keras.saving.load_model`. `per_layer_learning_rates` builds the groups from layers (or nested models).

The wrapper is stateful (TensorFlow and PyTorch backends; JAX's stateless training loop is not supported).

`learning_rate_schedule` gives the optimizer's learning rate for the labs' ``--lr`` and ``--lr-schedule``.
"""

import keras
import numpy as np

from labkit.errors import LabkitInputError, require

#: The optimizers a lab or a builder can name, with Keras's defaults but the learning rate.
OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}


def optimizer_by_name(name, learning_rate):
    """A new Keras optimizer from its name in `OPTIMIZERS` (``adam``, ``sgd``, ``rmsprop``) and a learning rate.

    Raises:
        LabkitInputError: an unknown name (the message lists the known ones).
    """
    require(name in OPTIMIZERS, f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate=learning_rate if _is_schedule(learning_rate) else float(learning_rate))


def _is_schedule(rate):
    return isinstance(rate, keras.optimizers.schedules.LearningRateSchedule)


def _group_rate(rate, group_name):
    """A group's learning rate: a float >= 0, or a schedule (given as the object or as its serialized dict)."""
    if isinstance(rate, dict):
        rate = keras.optimizers.schedules.deserialize(rate)
    if _is_schedule(rate):
        return rate
    require(float(rate) >= 0, f"learning rate of group {group_name!r} must be >= 0, got {rate}")
    return float(rate)


def _as_float(value):
    """A learning rate as a Python float, written as its float32 value prints (1e-3, not 0.0010000000474974513)."""
    return float(str(np.float32(keras.ops.convert_to_numpy(value))))


@keras.saving.register_keras_serializable(package="labkit")
class GroupedOptimizer(keras.optimizers.Optimizer):
    """An optimizer whose variable groups each train at their own learning rate.

    Args:
        inner_optimizer: the optimizer (e.g. ``keras.optimizers.Adam(1e-3)``) used for every variable in no group;
            each group uses a copy of it with the group's learning rate.
        groups: a list of dicts ``{"name": str, "learning_rate": float >= 0 or a LearningRateSchedule, "paths":
            [variable paths]}``. A path may belong to one group only. Learning rate 0 freezes the group.
        name: optimizer name.

    The ``learning_rate`` property is the inner optimizer's; setting it (e.g. by ``ReduceLROnPlateau``) scales every
    group's rate by the same factor, as PyTorch's schedulers scale every parameter group.

    Example:
        >>> optimizer = GroupedOptimizer(keras.optimizers.Adam(1e-3),
        ...                              [{"name": "encoder", "learning_rate": 1e-5, "paths": encoder_paths}])
        >>> model.compile(optimizer=optimizer, loss="binary_crossentropy")
    """

    def __init__(self, inner_optimizer, groups=(), name="grouped_optimizer", **kwargs):
        require(not kwargs, f"GroupedOptimizer takes no optimizer arguments of its own ({', '.join(kwargs)}): "
                "set them on the inner optimizer")
        # The loss is scaled by this wrapper (Trainer calls its scale_loss) and unscaled by each inner copy.
        super().__init__(learning_rate=0.0, name=name, loss_scale_factor=inner_optimizer.loss_scale_factor)
        self.inner_optimizer = inner_optimizer
        specs, owner = [], {}
        for group in groups:
            rate = _group_rate(group["learning_rate"], group["name"])
            for path in group["paths"]:
                require(path not in owner, f"variable {path!r} is in two groups: {owner.get(path)!r} and "
                        f"{group['name']!r}")
                owner[path] = group["name"]
            specs.append((str(group["name"]), rate, tuple(str(p) for p in group["paths"])))
        self._group_specs = tuple(specs)
        self._path_to_group = {path: index for index, (_, _, paths) in enumerate(specs) for path in paths}
        self._group_optimizers = [self._copy_with_rate(rate, group_name) if _is_schedule(rate) or rate > 0 else None
                                  for group_name, rate, _ in specs]

    def _copy_with_rate(self, learning_rate, group_name):
        config = {**self.inner_optimizer.get_config(), "learning_rate": learning_rate,
                  "name": f"{group_name}_{self.inner_optimizer.name}"}
        return type(self.inner_optimizer).from_config(config)

    @property
    def group_names(self):
        """Names of the groups, in order."""
        return [name for name, _, _ in self._group_specs]

    def group_learning_rate(self, name):
        """The current learning rate of group `name` (0.0 for a frozen group)."""
        index = self.group_names.index(name)
        optimizer = self._group_optimizers[index]
        return 0.0 if optimizer is None else _as_float(optimizer.learning_rate)

    def _rate_config(self, name):
        """Group `name`'s rate for `get_config`: its schedule, serialized, or its current float rate."""
        optimizer = self._group_optimizers[self.group_names.index(name)]
        rate = optimizer.get_config()["learning_rate"] if optimizer is not None else None
        return rate if isinstance(rate, dict) else self.group_learning_rate(name)  # Keras serializes a schedule

    def group_of(self, variable):
        """Name of the group `variable` trains in, or None when it uses the inner optimizer."""
        index = self._group_index(variable)
        return None if index is None else self._group_specs[index][0]

    def _optimizers(self):
        """The inner optimizer and each group's copy (frozen groups have none)."""
        return [self.inner_optimizer] + [opt for opt in self._group_optimizers if opt is not None]

    def _group_index(self, variable):
        """Index of the group `variable` belongs to, or None for the inner optimizer's variables."""
        return self._path_to_group.get(variable.path)

    def build(self, var_list):
        members = [[] for _ in self._group_specs]
        rest = []
        for variable in var_list:
            index = self._group_index(variable)
            (rest if index is None else members[index]).append(variable)
        self.inner_optimizer.build(rest)
        for optimizer, variables in zip(self._group_optimizers, members):
            if optimizer is not None:
                optimizer.build(variables)
        super().build(var_list)

    @property
    def variables(self):
        own = self._variables[:]
        for optimizer in self._optimizers():
            own += optimizer.variables
        return own

    # The .keras format saves the inner optimizers itself (it walks the `inner_optimizer` and `_group_optimizers`
    # attributes), so the wrapper stores only its own step counter: saving `variables` would store every slot twice.
    def save_own_variables(self, store):
        for i, variable in enumerate(self._variables):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        for i, variable in enumerate(self._variables):
            if str(i) in store:
                variable.assign(store[str(i)])

    def _partition(self, grads, variables):
        """``[(optimizer, grads, variables)]`` per optimizer; frozen groups are left out."""
        parts = {}
        for grad, variable in zip(grads, variables):
            index = self._group_index(variable)
            optimizer = self.inner_optimizer if index is None else self._group_optimizers[index]
            if optimizer is None:
                continue  # learning rate 0: never touched
            entry = parts.setdefault(id(optimizer), (optimizer, [], []))
            entry[1].append(grad)
            entry[2].append(variable)
        return list(parts.values())

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            if not self.built:
                raise ValueError("GroupedOptimizer.apply without variables needs a built optimizer: call "
                                 "optimizer.build(trainable_variables) first")
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if not self.built:
                with keras.name_scope(self.name, caller=self):
                    self.build(trainable_variables)
                self.built = True
        grads = list(grads)
        if not grads:
            return
        for optimizer, group_grads, group_variables in self._partition(grads, trainable_variables):
            optimizer.apply(group_grads, group_variables)
        self._iterations.assign_add(1)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        raise NotImplementedError("GroupedOptimizer is stateful: use the TensorFlow or PyTorch backend")

    def finalize_variable_values(self, var_list):
        for optimizer, _, variables in self._partition([None] * len(var_list), var_list):
            optimizer.finalize_variable_values(variables)

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        if not hasattr(self, "inner_optimizer"):  # the base constructor sets its own placeholder
            return
        old = _as_float(self.inner_optimizer.learning_rate)
        self.inner_optimizer.learning_rate = learning_rate
        if old > 0 and not callable(learning_rate):
            ratio = float(learning_rate) / old
            for optimizer in self._group_optimizers:
                if optimizer is not None:
                    optimizer.learning_rate = _as_float(optimizer.learning_rate) * ratio

    def get_config(self):
        groups = [{"name": name, "learning_rate": self._rate_config(name), "paths": list(paths)}
                  for name, _, paths in self._group_specs]
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "groups": groups,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(config.pop("inner_optimizer"), custom_objects=custom_objects)
        return cls(inner, **config)


def per_layer_learning_rates(optimizer, model, learning_rates):
    """A `GroupedOptimizer` giving each layer (or nested model) in `learning_rates` its own learning rate.

    Every variable of `model` outside those layers uses `optimizer` with its own learning rate.

    Args:
        optimizer: a Keras optimizer, e.g. ``keras.optimizers.Adam(1e-3)`` (the rate of every other variable).
        model: the model that will be trained (its variable paths must tell the groups apart).
        learning_rates: ``{layer or layer name: learning rate or schedule}``; 0 freezes the layer's variables.

    Returns:
        A `GroupedOptimizer` with one group per layer, named after it.

    Raises:
        LabkitInputError: a learning rate is negative, or a variable path of a group is also used by a variable
            outside it (the groups could not be told apart after reloading).

    Example:
        >>> optimizer = per_layer_learning_rates(keras.optimizers.Adam(1e-3), model, {"encoder": 1e-4})
        >>> model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True))
    """
    groups = []
    for layer, rate in learning_rates.items():
        layer = model.get_layer(layer) if isinstance(layer, str) else layer
        paths = [v.path for v in layer.weights]
        inside = set(id(v) for v in layer.weights)
        outside = {v.path for v in model.weights if id(v) not in inside}
        clashes = sorted(set(paths) & outside)
        if clashes:
            raise LabkitInputError(f"variable path(s) {', '.join(clashes[:3])} of layer {layer.name!r} are also used "
                                   "outside it: rename the layers so paths are unique")
        groups.append({"name": layer.name, "learning_rate": _group_rate(rate, layer.name), "paths": paths})
    return GroupedOptimizer(optimizer, groups)


LR_SCHEDULES = ("constant", "cosine")


def learning_rate_schedule(learning_rate, schedule="constant", total_steps=None):
    """The optimizer's learning rate for ``--lr`` and ``--lr-schedule``.

    ``constant`` keeps `learning_rate` for the whole run (the course's choice). ``cosine`` (Keras's `CosineDecay`)
    rises linearly from 0 to `learning_rate` over the first 10 % of the steps, then decays to 0 along half a cosine.
    The warm-up spares the network Adam's first updates, which move every weight by about the learning rate at once
    and can saturate a sigmoid output for good; the decay makes the last epochs take ever smaller steps, so a run
    ends where it is best instead of bouncing out of it. On a resumed run the optimizer's step counter is restored,
    so the schedule goes on where it stopped.

    Args:
        learning_rate: the starting (for ``constant``, the only) learning rate.
        schedule: ``constant`` or ``cosine``.
        total_steps: optimizer steps of the whole run (epochs × steps per epoch); needed for ``cosine``.

    Returns:
        A float or a `keras.optimizers.schedules.LearningRateSchedule`, for an optimizer's ``learning_rate``.

    Example:
        >>> keras.optimizers.Adam(learning_rate_schedule(1e-3, "cosine", total_steps=12 * 16))
    """
    require(schedule in LR_SCHEDULES, f"unknown --lr-schedule {schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
    require(float(learning_rate) > 0, f"learning rate must be > 0, got {learning_rate}")
    if schedule == "constant":
        return float(learning_rate)
    require(total_steps is not None and int(total_steps) >= 1,
            f"a cosine schedule needs the run's steps, got {total_steps}")
    warmup = max(1, int(total_steps) // 10)
    return keras.optimizers.schedules.CosineDecay(0.0, max(1, int(total_steps) - warmup), alpha=0.0,
                                                  warmup_target=float(learning_rate), warmup_steps=warmup)
