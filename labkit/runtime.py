"""Runtime set-up of a run: numeric precision, seeds, and distribution over devices and machines.

A lab sets precision and seeds through `labkit.lab.start_run`, then calls `distribute` once: it returns a
`Distribution` (strategy, replicas, global batch size, learning rate) that the lab builds its datasets and model with
and that ``config.json`` records. Under ``--distribute multiworker`` `start_run` also asks `worker_run_dir` where this
process writes: only the chief writes ``--out``.
"""

import atexit
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from labkit.errors import LabkitInputError, require

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("none", "mirrored", "multiworker")


def cpu_has_bf16():
    """True when the CPU has native bfloat16 arithmetic (AMX-BF16 or AVX512-BF16), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(name="auto", avoid=()):
    """The Keras dtype policy name for ``--precision`` `name`.

    ``auto`` picks ``mixed_bfloat16`` on a GPU of compute capability ≥ 8.0 or a CPU with native bf16,
    ``mixed_float16`` on older GPUs, and ``float32`` otherwise; ``float32`` too when its pick is in `avoid` (the
    policies a lab was measured to lose quality under). An explicit policy is returned as given.
    """
    require(name in PRECISIONS, f"unknown precision {name!r}: choose one of {', '.join(PRECISIONS)}")
    if name != "auto":
        return name
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        pick = "mixed_bfloat16" if tuple(capability) >= (8, 0) else "mixed_float16"
    else:
        pick = "mixed_bfloat16" if cpu_has_bf16() else "float32"
    return "float32" if pick in avoid else pick


def set_precision(name="auto", avoid=()):
    """Set the global Keras dtype policy from a ``--precision`` name (see `resolve_precision`); returns the
    resolved policy name."""
    policy = resolve_precision(name, avoid)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def set_seed(seed, deterministic=False):
    """Seed Python, NumPy and TensorFlow; with `deterministic`, also enable TensorFlow's op determinism.

    Op determinism makes repeated runs give identical numbers at some cost in speed (some ops lose their
    parallel, non-deterministic kernels).
    """
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def seed_states(*objects):
    """The random-seed state variables (Keras ``SeedGenerator`` states) of Keras layers, models or seed generators,
    in a fixed order.

    Dropout masks and Keras's random preprocessing layers draw from these states; they are not among a model's
    weights, so ``save_weights`` does not keep them (`labkit.resume` does).
    """
    states = []
    for obj in objects:
        if isinstance(obj, keras.random.SeedGenerator):
            states.append(obj.state)
        elif obj is not None:
            states += [v for v in obj.variables if v.path.endswith("seed_generator_state")]
    return states


def reseed(states, seed):
    """Set each of `states` (see `seed_states`) from one ``(2,)`` seed pair: state i becomes ``seed + (i, 0)``, so
    the generators draw independent, reproducible streams. Works inside a `tf.data` function."""
    seed = tf.cast(seed, "int64")
    for index, state in enumerate(states):
        state.assign(tf.cast(seed + tf.constant([index, 0], "int64"), state.dtype))


def get_strategy(name="none"):
    """A `tf.distribute` strategy for ``--distribute``: none (default device), mirrored (all local GPUs) or
    multiworker (machines listed in ``TF_CONFIG``, or the tasks of a SLURM job step: `cluster_resolver`).

    ``mirrored`` on a machine without GPUs mirrors over the logical CPU devices when the CPU has been split into
    several (`tf.config.set_logical_device_configuration`, as the tests do), else it runs one replica on the CPU.
    Build and compile the model inside ``strategy.scope()``; `scale_for_replicas` gives the global batch size and
    learning rate.

    Example:
        >>> strategy = get_strategy("mirrored")
        >>> with strategy.scope():
        ...     model = get_unet((256, 256, 1))
    """
    require(name in STRATEGIES, f"unknown distribution strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    if name == "mirrored":
        _let_keras_fit_run_on_several_workers()  # its first-batch build also serves replicas of unequal batches
        cpus = _mirrored_cpu_devices()
        if cpus:  # logical CPUs share one memory: plain reduction, no collective ops (they clash between strategies)
            return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        resolver = cluster_resolver()
        _let_keras_fit_run_on_several_workers()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    return tf.distribute.get_strategy()


def _let_keras_fit_run_on_several_workers():
    """Work around Keras 3's `Model.fit` under `MultiWorkerMirroredStrategy` (keras-team/keras#20585).

    Two steps of Keras's TensorFlow trainer fail across workers: building the model from a first batch reduces that
    batch over all workers (``PerReplica`` cannot be converted), and the per-step logs are averaged with
    ``axis=0`` over scalar values. Here the build uses this worker's first batch, and the logs are averaged over all
    replicas of all workers. The build from one replica's first batch also serves several replicas on one machine:
    Keras's MEAN over replicas fails when their batches differ in size (an odd batch over two replicas; batches that
    would leave a replica empty are regrouped by `labkit.data.pipeline.even_replica_batches`). Both replacements
    defer to Keras's own code for one replica, the log averaging for any strategy within one machine. Skipped when
    Keras's internals have moved (a Keras with its own fix).
    """
    try:
        from keras import tree
        from keras.src.backend.tensorflow import trainer
    except ImportError:
        return
    spans_workers = getattr(trainer, "_collective_all_reduce_multi_worker", None)
    if spans_workers is None or getattr(trainer.reduce_per_replica, "labkit_multiworker", False):
        return
    keras_reduce, keras_build = trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if spans_workers(strategy) and reduction in ("auto", "mean"):
            return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return keras_reduce(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or iterator is None or not (spans_workers(strategy) or strategy.num_replicas_in_sync > 1):
            return keras_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tree.map_structure(lambda value: strategy.experimental_local_results(value)[0],
                                            next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    reduce_per_replica.labkit_multiworker = True
    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build


def _mirrored_cpu_devices():
    """Every logical CPU device when there is no GPU and the CPU was split into several; else None (TF's choice)."""
    if tf.config.list_logical_devices("GPU"):
        return None
    cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
    return cpus if len(cpus) > 1 else None


def check_tf_config(text):
    """Check a ``TF_CONFIG`` value for `MultiWorkerMirroredStrategy`; returns ``(n_workers, task_index)``.

    It must be JSON like ``{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker",
    "index": 0}}``: the same cluster list on every machine, each machine with its own index.

    Raises:
        LabkitInputError: naming what is missing or wrong.
    """
    require(text, "--distribute multiworker needs the TF_CONFIG environment variable, or a SLURM job step started "
                  "with srun (see README: Scaling up)")
    try:
        config = json.loads(text)
        workers, task = config["cluster"]["worker"], config["task"]
    except (ValueError, KeyError, TypeError):
        raise LabkitInputError('TF_CONFIG must be JSON with "cluster": {"worker": [...]} and "task": '
                               '{"type": "worker", "index": i}') from None
    require(isinstance(workers, list) and workers, "TF_CONFIG: cluster.worker must be a non-empty list of host:port")
    index = task.get("index") if isinstance(task, dict) else None
    require(isinstance(index, int) and 0 <= index < len(workers),
            f"TF_CONFIG: task.index must be an integer in [0, {len(workers) - 1}], got {index!r}")
    return len(workers), index


def _in_slurm_task():
    """Is this process a task of a SLURM job (``SLURM_PROCID`` set) with no ``TF_CONFIG`` to say otherwise?"""
    return not os.environ.get("TF_CONFIG") and "SLURM_PROCID" in os.environ


def cluster_resolver():
    """Where the workers of ``--distribute multiworker`` come from: ``TF_CONFIG``, else the SLURM job step.

    With ``TF_CONFIG`` set it is checked (`check_tf_config`) and None is returned: TensorFlow's default resolver reads
    it. Without it, in a SLURM task (``SLURM_PROCID`` set, e.g. under ``srun``), the cluster of TensorFlow's
    `tf.distribute.cluster_resolver.SlurmClusterResolver`: one worker per task of the job step, on the step's nodes
    at port 8888 (8889, … for further tasks on one node), worker i = task ``SLURM_PROCID`` i. Each task trains on
    every GPU it sees (or on its CPU), so on GPU nodes start one task per node (``srun --ntasks-per-node=1``).

    Raises:
        LabkitInputError: neither is there, ``TF_CONFIG`` is malformed, or the SLURM variables of a job step are
            missing (the lab was not started with ``srun``).
    """
    if not _in_slurm_task():
        check_tf_config(os.environ.get("TF_CONFIG"))
        return None
    resolvers = tf.distribute.cluster_resolver
    try:
        # TensorFlow's resolver places tasks in GPU slots and leaves out the tasks of a node with fewer GPUs than
        # tasks (every task of a CPU node): give it a slot per task, and report the GPUs this task sees.
        slots = int(os.environ.get("SLURM_STEP_NUM_TASKS") or 1)
        slurm = resolvers.SlurmClusterResolver(gpus_per_node=slots, gpus_per_task=1, auto_set_gpu=False)
        cluster = slurm.cluster_spec()
    except (RuntimeError, ValueError) as error:
        raise LabkitInputError(f"--distribute multiworker under SLURM: {error} (start the lab with srun, or set "
                               "TF_CONFIG)") from None
    task_type, task_id = slurm.get_task_info()
    gpus = len(tf.config.list_physical_devices("GPU"))
    return resolvers.SimpleClusterResolver(cluster, task_type=task_type, task_id=task_id,
                                           num_accelerators={"GPU": gpus}, rpc_layer="grpc")


def worker_task():
    """This process's place among the workers of ``--distribute multiworker``: ``(index, workers, chief)``.

    From ``TF_CONFIG`` (the chief is its task of type ``chief``, else worker 0), else from SLURM (task
    ``SLURM_PROCID`` of ``SLURM_STEP_NUM_TASKS``; task 0 is the chief), as `cluster_resolver` chooses.

    Raises:
        LabkitInputError: no ``TF_CONFIG`` outside SLURM, or a malformed one (`check_tf_config`).
    """
    if _in_slurm_task():
        rank = int(os.environ["SLURM_PROCID"])
        tasks = os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS") or rank + 1
        return rank, int(tasks), rank == 0
    workers, index = check_tf_config(os.environ.get("TF_CONFIG"))
    config = json.loads(os.environ["TF_CONFIG"])
    kind, chiefs = config["task"].get("type", "worker"), config["cluster"].get("chief") or []
    return index, workers + len(chiefs), kind == "chief" or (kind == "worker" and index == 0 and not chiefs)


def worker_run_dir(out, name="none", resume=False):
    """The folder this process writes its run into: `out`, except on the workers of a multi-worker run other than
    its chief.

    Under ``--distribute multiworker`` every worker runs the whole lab: each training step is an all-reduce over all
    workers, so none may skip `labkit.training.fit`, its callbacks or what follows. Only the chief writes `out`
    (given the same ``--out`` on a shared file system, the workers would otherwise write the same files at once).
    Any other worker writes the same files into a private temporary folder (under ``TMPDIR``) that is removed when
    the process exits (a killed process leaves it behind); on `resume` the folder starts as a copy of `out`, which
    that worker must then be able to read (a shared file system), so it restores the same epoch as the chief.

    Args:
        out: the run folder of ``--out``.
        name: ``--distribute``; on `resume` the one stored in `out`'s ``config.json`` wins (the run goes on with it).
        resume: ``--resume``.

    Returns:
        `out` or the private folder, a `Path` for the latter.

    Raises:
        LabkitInputError: a bad ``TF_CONFIG`` (see `worker_task`), or a non-chief worker cannot read the run to
            resume.
    """
    stored = Path(out) / "config.json"
    if resume and stored.is_file():
        try:
            name = json.loads(stored.read_text())["settings"].get("distribute", name)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # not a readable config: RunFolder.create names the problem
    if name != "multiworker":
        return out
    index, workers, chief = worker_task()
    if chief:
        return out
    require(not resume or stored.is_file(), f"--resume: worker {index} cannot read {stored}; to resume a multi-worker "
            "run, every worker must see the chief's --out (a shared file system)")
    private = Path(tempfile.mkdtemp(prefix=f"labkit-worker{index}-"))
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    if resume:
        shutil.copytree(out, private, dirs_exist_ok=True)
    print(f"worker {index} of {workers}: the chief writes {out}; this worker writes a temporary copy, removed at exit")
    return private


def scale_for_replicas(strategy, batch_size, learning_rate, scale_lr=False):
    """The global batch size and learning rate of a run under `strategy`.

    ``--batch-size`` is per replica, so the global batch (what the dataset yields; the strategy splits it) is
    `batch_size` × replicas. The learning rate stays as given unless `scale_lr`, which multiplies it by the number of
    replicas (the linear scaling rule: a k-times larger batch averages k times more gradients per step).

    Args:
        strategy: a `tf.distribute.Strategy` (anything with ``num_replicas_in_sync``).
        batch_size: images per replica.
        learning_rate: the learning rate for one replica.
        scale_lr: multiply the learning rate by the number of replicas (``--scale-lr``).

    Returns:
        ``(global_batch_size, learning_rate)``.

    Example:
        >>> scale_for_replicas(get_strategy("mirrored"), 8, 1e-4, scale_lr=True)   # on 4 GPUs
        (32, 0.0004)
    """
    replicas = int(strategy.num_replicas_in_sync)
    return int(batch_size) * replicas, float(learning_rate) * (replicas if scale_lr else 1)


@dataclass(frozen=True)
class Distribution:
    """What `distribute` decided for a run.

    Attributes:
        strategy: the `tf.distribute.Strategy`; build and compile the model inside ``strategy.scope()``.
        replicas: devices training in sync (1 without ``--distribute``).
        global_batch_size: what a dataset batch holds: ``--batch-size`` (per replica) × replicas.
        lr_scale: the factor of every learning rate: replicas with ``--scale-lr``, else 1.
        learning_rate: ``--lr`` × `lr_scale`.
    """

    strategy: object
    replicas: int
    global_batch_size: int
    lr_scale: float
    learning_rate: float

    def record(self):
        """The entries ``config.json`` records with the settings (everything but the strategy object)."""
        return {"replicas": self.replicas, "global_batch_size": self.global_batch_size, "lr_scale": self.lr_scale,
                "learning_rate": self.learning_rate}


def distribute(settings):
    """Set up a lab run's ``--distribute``: its strategy, global batch size and learning-rate factor.

    Every lab calls this once, before it saves its config, and passes the result to `labkit.lab.save_config`, so
    ``config.json`` records what really ran (`Distribution.record`). Labs with several learning rates multiply each
    by ``lr_scale``. `settings` is only read.

    Args:
        settings: the lab's resolved settings (``distribute``, ``batch_size``, ``lr`` and ``scale_lr``).

    Returns:
        A `Distribution`.

    Example:
        >>> setup = distribute(settings)
        >>> with setup.strategy.scope():
        ...     model = compile_model(get_unet((256, 256, 1)), setup.learning_rate, "dice")
    """
    strategy = get_strategy(settings.distribute)
    scale_lr = bool(getattr(settings, "scale_lr", False))  # absent from config.json of runs before --scale-lr
    batch, lr_scale = scale_for_replicas(strategy, settings.batch_size, 1.0, scale_lr)
    setup = Distribution(strategy, int(strategy.num_replicas_in_sync), batch, lr_scale, float(settings.lr) * lr_scale)
    if setup.replicas > 1:
        rate = f"× {lr_scale:g} (--scale-lr)" if scale_lr else "as given (--scale-lr multiplies it)"
        print(f"{setup.replicas} replicas: global batch {batch} ({settings.batch_size} per replica), "
              f"learning rate {rate}")
    return setup
