"""Multi-device training with tf.distribute: mirrored and two-worker runs equal a single-device run; batch and lr.

A CPU can be split into logical devices only before TensorFlow initialises, so the two-replica checks run in a
fresh Python process that splits the CPU first and prints its findings as JSON; the multi-worker checks start two
worker processes on this machine, joined through TF_CONFIG (a training snippet, and Lab 4 as two worker processes
next to a one-process run). The choice of cluster (TF_CONFIG or SLURM) and of the chief runs on faked environments.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

from labkit.errors import LabkitInputError
from labkit.run_folder import read_csv
from labkit.runtime import check_tf_config, get_strategy, scale_for_replicas

SPLIT_CPU = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {root!r})
"""


TRAINING = """
import numpy as np
import keras
from labkit import get_unet
from labkit.data.pipeline import array_dataset
from labkit.metrics import dice_coef
from labkit.runtime import get_strategy, set_seed
from labkit.training import compile_model, fit

rng = np.random.default_rng(0)
masks = np.zeros((16, 32, 32, 1), np.float32)
for mask in masks:
    y, x = rng.integers(2, 18, 2)
    mask[y : y + rng.integers(6, 14), x : x + rng.integers(6, 14)] = 1
images = np.clip(0.3 + 0.4 * masks + rng.normal(0, 0.1, masks.shape), 0, 1).astype(np.float32)

set_seed(1)
initial = get_unet((32, 32, 1), base=4).get_weights()

def train(strategy):
    with strategy.scope():
        model = get_unet((32, 32, 1), base=4)
        model.set_weights(initial)
        compile_model(model, 1e-2, "binary_crossentropy", metrics=[dice_coef])
    data = array_dataset(images, masks, batch_size=8)  # global batch 8: 2 steps per epoch, same order every epoch
    history = fit(model, data, epochs=3, monitor="loss", verbose=0)
    return {"loss": history["loss"], "kernel": model.get_weights()[0].ravel().tolist(),
            "replicas": strategy.num_replicas_in_sync}
"""

MIRRORED_VS_SINGLE = TRAINING + """
results = {"single": train(tf.distribute.get_strategy()), "mirrored": train(get_strategy("mirrored"))}
"""

PRECISE_BN = """
x = np.random.default_rng(4).normal([10.0, -2.0, 5.0], [1.0, 3.0, 0.5], size=(64, 3)).astype(np.float32)
y = (x.sum(axis=1, keepdims=True) > 13).astype(np.float32)
with get_strategy("mirrored").scope():
    inputs = keras.Input((3,))
    normalised = keras.layers.BatchNormalization(name="norm")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(normalised))
    compile_model(model, 1e-3, "binary_crossentropy")
train_data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
fit(model, train_data, train_data, epochs=1, verbose=0, stop_dead=False, precise_batchnorm=True)
norm = model.get_layer("norm")
results["precise_bn"] = {
    "mean": [v.numpy().tolist() for v in norm.moving_mean.value.values],
    "variance": [v.numpy().tolist() for v in norm.moving_variance.value.values],
    "expected_mean": np.mean([x[i:i + 16].mean(axis=0) for i in range(0, 64, 16)], axis=0).tolist(),
    "expected_variance": np.mean([x[i:i + 16].var(axis=0) for i in range(0, 64, 16)], axis=0).tolist()}
"""

ONE_WORKER = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
sys.path.insert(0, {root!r})
from labkit.runtime import get_strategy
strategy = get_strategy("multiworker")
""" + TRAINING.replace("{", "{{").replace("}", "}}") + """
print(json.dumps(train(strategy)))
"""


LAB_RUN = """
import runpy
sys.argv = ["lab4_unet.py", *sys.argv[1:]]
try:
    runpy.run_path({lab!r}, run_name="__main__")
except SystemExit as exit:
    assert exit.code == 0, exit.code
results["lab"] = json.load(open(os.path.join({out!r}, "config.json")))["settings"]
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def two_replica_results(tmp_path_factory):
    """One process, CPU split in two: a single-device and a mirrored training of the same model on the same data,
    then a Lab 4 run with ``--distribute mirrored --batch-size 3 --lr 0.001 --scale-lr`` (one TensorFlow start-up
    for both)."""
    from labkit.data.synthetic import xray_dataset

    tmp = tmp_path_factory.mktemp("two_replicas")
    data, out = xray_dataset(n_images=8, size=32, root=tmp / "data"), tmp / "run"
    argv = ["--data-dir", data, "--out", out, "--img-size", "32", "--epochs", "1", "--base", "2", "--batch-size",
            "3", "--lr", "0.001", "--distribute", "mirrored", "--scale-lr", "--quiet"]
    script = (SPLIT_CPU.format(root=str(ROOT)) + textwrap.dedent(MIRRORED_VS_SINGLE) + textwrap.dedent(PRECISE_BN)
              + textwrap.dedent(LAB_RUN.format(lab=str(ROOT / "labs" / "lab4_unet.py"), out=str(out))))
    result = subprocess.run([sys.executable, "-c", script, *map(str, argv)], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "out": out}


@pytest.mark.slow
def test_mirrored_run_on_two_devices_matches_a_single_device_run(two_replica_results):
    single, mirrored = two_replica_results["single"], two_replica_results["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert single["loss"][-1] < single["loss"][0]  # it trained: the comparison is between two moving runs
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=1e-4)
    np.testing.assert_allclose(mirrored["kernel"], single["kernel"], atol=1e-5)  # first conv kernel after 6 steps


@pytest.mark.slow
def test_precise_batchnorm_statistics_are_set_on_both_replicas(two_replica_results):
    """--precise-bn under two replicas: each replica's copy of the moving statistics is the NumPy mean of the
    training batches' statistics (Keras's moving average after 4 steps would be about 4 % of the mean)."""
    found = two_replica_results["precise_bn"]
    assert len(found["mean"]) == len(found["variance"]) == 2
    for mean, variance in zip(found["mean"], found["variance"]):
        np.testing.assert_allclose(mean, found["expected_mean"], rtol=1e-5)
        np.testing.assert_allclose(variance, found["expected_variance"], rtol=1e-4)


@pytest.mark.slow
def test_lab_global_batch_is_batch_size_times_replicas_and_scale_lr_scales_the_rate(two_replica_results):
    settings = two_replica_results["lab"]
    assert settings["distribute"] == "mirrored" and settings["replicas"] == 2
    assert settings["global_batch_size"] == 6  # --batch-size 3 per replica × 2
    assert settings["lr"] == 0.001 and settings["learning_rate"] == pytest.approx(0.002)
    assert (two_replica_results["out"] / "metrics.json").is_file()


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_like_one_device(two_replica_results):
    """Two processes on this machine joined by TF_CONFIG (MultiWorkerMirroredStrategy, one CPU replica each) give
    the single-device losses and weights; each worker gets half of every global batch."""
    workers = [f"localhost:{port}" for port in free_ports(2)]
    script = ONE_WORKER.format(root=str(ROOT))
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, cwd=ROOT, env={**os.environ, "TF_CONFIG": json.dumps(
                                      {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})})
                 for i in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    single = two_replica_results["single"]
    for stdout, _ in outputs:
        worker = json.loads(stdout.strip().splitlines()[-1])
        assert worker["replicas"] == 2
        np.testing.assert_allclose(worker["loss"], single["loss"], rtol=1e-4)
        np.testing.assert_allclose(worker["kernel"], single["kernel"], atol=1e-5)


LAB4_TINY = ["--img-size", "16", "--base", "2", "--epochs", "2", "--lr", "0.001", "--precision", "float32",
             "--quiet", "--deterministic"]

#: What importing Keras and matplotlib writes into a fresh HOME, in any process (a single-process run too).
LIBRARY_CACHES = (".keras/", ".cache/matplotlib/", ".config/matplotlib/")


def files_under(folder):
    """Every file and folder under `folder`, as POSIX paths relative to it (folders end with ``/``)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix() + ("/" if p.is_dir() else "") for p in folder.rglob("*")}


def make_places(root, names):
    """A folder under `root` for each name, with an empty cwd, home and tmp in it; their paths."""
    for name in names:
        for part in ("cwd", "home", "tmp"):
            (root / name / part).mkdir(parents=True)
    return [root / name for name in names]


def start_lab(argv, place, log, tf_config=None):
    """Start ``labs/lab4_unet.py`` with cwd, HOME and TMPDIR in `place` (see `make_places`) and `tf_config`, if any."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG" and not key.startswith("SLURM_")}
    env.update(HOME=str(place / "home"), TMPDIR=str(place / "tmp"), TF_NUM_INTRAOP_THREADS="1", MPLBACKEND="Agg",
               LABKIT_DATA_HOME=str(place / "embedded"),  # anything written there would be seen below
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    with open(log, "w") as stdout:
        return subprocess.Popen([sys.executable, str(ROOT / "labs" / "lab4_unet.py"), *map(str, argv)],
                                cwd=place / "cwd", env=env, stdout=stdout, stderr=subprocess.STDOUT)


def wait_for(processes, timeout=600):
    """Wait for every process; once one fails, stop the others (a lone worker would wait for its peer forever)."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in processes):
            break
        time.sleep(0.5)
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
    return [process.returncode for process in processes]


@pytest.mark.slow
def test_lab4_unet_on_two_worker_processes_trains_like_one_process_and_only_the_chief_writes(tmp_path):
    """Lab 4's U-Net as two workers on localhost (one TF_CONFIG each, --batch-size 2 per replica) against one process
    with --batch-size 4: the same global batch, so the same history; only the chief writes the shared --out.

    Each process has its own fresh cwd, HOME and TMPDIR: afterwards every new file under ``tmp_path`` is in the
    chief's --out, the reference run's own folders, or the library caches a fresh HOME gets in any process (and the
    worker's HOME holds exactly what the chief's holds). The worker wrote its copy of the run into a private folder
    in its TMPDIR, and removed it.
    """
    from labkit.data.synthetic import xray_dataset

    data = xray_dataset(n_images=10, size=32, root=tmp_path / "data")  # 8 training images: two global batches of 4
    names = ("worker0", "worker1", "reference")
    places, log_files = make_places(tmp_path, names), [tmp_path / f"{name}.txt" for name in names]
    before = files_under(tmp_path)
    out, reference = tmp_path / "run", places[2] / "run"
    workers = [f"localhost:{port}" for port in free_ports(2)]
    argv = ["--data-dir", data, *LAB4_TINY, "--batch-size", "2", "--distribute", "multiworker", "--out", out]
    started = time.monotonic()
    processes = [start_lab(argv, places[i], log_files[i], {"cluster": {"worker": workers},
                                                     "task": {"type": "worker", "index": i}}) for i in range(2)]
    processes.append(start_lab(["--data-dir", data, *LAB4_TINY, "--batch-size", "4", "--out", reference], places[2],
                               log_files[2]))
    codes = wait_for(processes)
    print(f"two workers and the reference run: {time.monotonic() - started:.0f} s")
    logs = [log.read_text() for log in log_files]
    assert codes == [0, 0, 0], "\n\n".join(log[-3000:] for log in logs)

    # The chief (worker 0) wrote the run folder; worker 1 wrote nowhere else.
    assert {"config.json", "history.csv", "metrics.json", "model.keras"} <= files_under(out)
    chief_home, worker_home = files_under(tmp_path / "worker0" / "home"), files_under(tmp_path / "worker1" / "home")
    in_caches = lambda path: any(path.startswith(c) or c.startswith(path) for c in LIBRARY_CACHES)  # noqa: E731
    assert worker_home == chief_home and all(map(in_caches, worker_home)), worker_home
    checked = ("run/", "worker0/home/", "worker1/home/", "reference/", *(log.name for log in log_files))
    elsewhere = {path for path in files_under(tmp_path) - before if not path.startswith(checked)}
    assert elsewhere == set(), elsewhere  # nothing in either worker's cwd or TMPDIR, nothing by the data
    private = [line.split("run folder: ", 1)[1] for line in logs[1].splitlines() if line.startswith("run folder: ")]
    assert private and Path(private[0]).parent == tmp_path / "worker1" / "tmp" and not Path(private[0]).exists()
    summary = [[line for line in log.splitlines() if line.startswith("best epoch")] for log in logs[:2]]
    assert summary[0] and summary[1] == summary[0]  # the worker ran to the end on the same (all-reduced) history

    settings = [json.loads((folder / "config.json").read_text())["settings"] for folder in (out, reference)]
    assert [(s["replicas"], s["global_batch_size"]) for s in settings] == [(2, 4), (1, 4)]
    two, one = (read_csv(folder / "history.csv") for folder in (out, reference))
    assert [row["epoch"] for row in two] == [row["epoch"] for row in one] == [1, 2]
    assert one[-1]["loss"] < one[0]["loss"]  # it trained: the comparison is between two moving runs
    # Losses: measured at most 2.4e-5 apart (relative; 0 at --lr 1e-7, so the split of each global batch and the
    # all-reduce are exact). The gap is rounding: the all-reduce adds the two workers' gradients, one process sums
    # the four images in another order, and Adam's steps carry such differences of the last bits forward; it grows
    # with the learning rate (1.5e-4 at --lr 0.01). 1e-4 is 4 times the gap, and 28 times smaller than the loss's
    # own change over these 4 steps (2.8e-3), which a wrong global batch, learning rate or data split would alter.
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([r[key] for r in two], [r[key] for r in one], rtol=1e-4, err_msg=key)
    # Dice is batch-wide and computed per replica: the mean of each worker's Dice over its 2 images is not the Dice
    # of all 4 (measured up to 3.0e-4 apart, at any learning rate), hence the looser bound.
    for key in ("dice_coef", "val_dice_coef"):
        np.testing.assert_allclose([r[key] for r in two], [r[key] for r in one], atol=1e-3, err_msg=key)


@pytest.mark.parametrize(
    "replicas, batch, lr, scale, expected",
    [(1, 8, 1e-4, False, (8, 1e-4)), (1, 8, 1e-4, True, (8, 1e-4)), (4, 8, 1e-4, False, (32, 1e-4)),
     (4, 8, 1e-4, True, (32, 4e-4)), (3, 5, 0.01, True, (15, 0.03))],
)
def test_scale_for_replicas(replicas, batch, lr, scale, expected):
    global_batch, rate = scale_for_replicas(SimpleNamespace(num_replicas_in_sync=replicas), batch, lr, scale)
    assert global_batch == expected[0] and rate == pytest.approx(expected[1])


def test_single_device_strategies_have_one_replica():
    assert get_strategy("none").num_replicas_in_sync == 1
    assert get_strategy("mirrored").num_replicas_in_sync == 1  # no GPU, CPU not split: one replica on the CPU


@pytest.mark.parametrize(
    "tf_config, message",
    [(None, "needs the TF_CONFIG"), ("not json", "must be JSON"), ('{"cluster": {}}', "must be JSON"),
     ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
     ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', r"\[0, 1\], got 2")],
)
def test_bad_tf_config_is_named(tf_config, message):
    with pytest.raises(LabkitInputError, match=message):
        check_tf_config(tf_config)


def test_good_tf_config_gives_workers_and_index():
    config = {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 1}}
    assert check_tf_config(json.dumps(config)) == (2, 1)


SLURM_STEP = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "node[07-08]",
              "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}  # task 1 of a two-node `srun --ntasks-per-node=1` step
TWO_WORKERS = {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 1}}


@pytest.fixture
def cluster_environment(monkeypatch):
    """``cluster_environment(tf_config=None, slurm=None)`` sets exactly these (TF_CONFIG as JSON, SLURM variables)."""
    for key in [key for key in os.environ if key == "TF_CONFIG" or key.startswith("SLURM_")]:
        monkeypatch.delenv(key)

    def set_up(tf_config=None, slurm=None):
        if tf_config is not None:
            monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
        for key, value in (slurm or {}).items():
            monkeypatch.setenv(key, value)

    return set_up


def test_multiworker_cluster_comes_from_tf_config_else_from_the_slurm_step(cluster_environment, monkeypatch):
    from labkit.runtime import cluster_resolver

    cluster_environment(TWO_WORKERS, SLURM_STEP)
    assert cluster_resolver() is None  # TF_CONFIG set: TensorFlow's own resolver reads it, SLURM or not
    monkeypatch.delenv("TF_CONFIG")
    resolver = cluster_resolver()
    assert resolver.cluster_spec().as_dict() == {"worker": ["node07:8888", "node08:8888"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert resolver.num_accelerators() == {"GPU": len(tf.config.list_physical_devices("GPU"))}  # what this task sees
    assert resolver.rpc_layer == "grpc"
    cluster_environment(slurm={"SLURM_STEP_NODELIST": "node07", "SLURM_STEP_TASKS_PER_NODE": "2"})
    assert cluster_resolver().cluster_spec().as_dict() == {"worker": ["node07:8888", "node07:8889"]}  # CPU tasks
    monkeypatch.delenv("SLURM_STEP_NODELIST")  # a SLURM job, but not a job step: started without srun
    with pytest.raises(LabkitInputError, match="SLURM_STEP_NODELIST not found.*start the lab with srun"):
        cluster_resolver()
    for key in SLURM_STEP:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(LabkitInputError, match="needs the TF_CONFIG environment variable, or a SLURM job step"):
        cluster_resolver()


@pytest.mark.parametrize(
    "tf_config, slurm, expected",
    [(TWO_WORKERS, None, (1, 2, False)), ({**TWO_WORKERS, "task": {"type": "worker", "index": 0}}, None, (0, 2, True)),
     ({"cluster": {"chief": ["c:1"], "worker": ["w:1"]}, "task": {"type": "chief", "index": 0}}, None, (0, 2, True)),
     ({"cluster": {"chief": ["c:1"], "worker": ["w:1"]}, "task": {"type": "worker", "index": 0}}, None, (0, 2, False)),
     (None, SLURM_STEP, (1, 2, False)), (None, {**SLURM_STEP, "SLURM_PROCID": "0"}, (0, 2, True)),
     (TWO_WORKERS, {**SLURM_STEP, "SLURM_PROCID": "0"}, (1, 2, False))],  # TF_CONFIG wins over SLURM
)
def test_worker_task_names_the_chief(cluster_environment, tf_config, slurm, expected):
    from labkit.runtime import worker_task

    cluster_environment(tf_config, slurm)
    assert worker_task() == expected


@pytest.fixture
def exit_actions(monkeypatch):
    """What `labkit.runtime` registers to run at exit, recorded instead of registered."""
    import labkit.runtime

    actions = []
    monkeypatch.setattr(labkit.runtime.atexit, "register", lambda *call, **kwargs: actions.append((call, kwargs)))
    return actions


def test_only_the_chief_writes_the_run_folder_a_worker_a_private_one_removed_at_exit(cluster_environment, monkeypatch,
                                                                                     tmp_path, exit_actions):
    from labkit.runtime import worker_run_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "run"
    cluster_environment({**TWO_WORKERS, "task": {"type": "worker", "index": 0}})
    assert worker_run_dir(out, "multiworker") == out and not exit_actions  # the chief
    cluster_environment(TWO_WORKERS)
    assert worker_run_dir(out, "none") == out and worker_run_dir(out, "mirrored") == out  # TF_CONFIG alone: no cluster
    private = worker_run_dir(out, "multiworker")
    assert private.parent == tmp_path / "tmp" and private.is_dir() and not out.exists()
    (private / "model.keras").write_text("weights")
    [((remove, *args), kwargs)] = exit_actions
    remove(*args, **kwargs)
    assert not private.exists()


def test_a_worker_resumes_from_a_private_copy_of_the_chiefs_run(cluster_environment, monkeypatch, tmp_path,
                                                                exit_actions):
    from labkit.runtime import worker_run_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    cluster_environment(TWO_WORKERS)
    out = tmp_path / "run"
    with pytest.raises(LabkitInputError, match=r"--resume: worker 1 cannot read .*config.json.*shared file system"):
        worker_run_dir(out, "multiworker", resume=True)
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "latest.weights.h5").write_text("epoch 3")
    (out / "config.json").write_text(json.dumps({"settings": {"distribute": "multiworker"}}))
    private = worker_run_dir(out, "none", resume=True)  # the stored --distribute wins: the run goes on with it
    assert private.parent == tmp_path / "tmp" and (private / "backup" / "latest.weights.h5").read_text() == "epoch 3"
    assert files_under(private) == files_under(out) and len(exit_actions) == 1


def test_lab_rejects_multiworker_without_tf_config(lab_runner, monkeypatch, tmp_path):
    from labkit.data.synthetic import xray_dataset

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    data = xray_dataset(n_images=4, size=16, root=tmp_path / "data")
    code, _, stderr = lab_runner("lab4_unet", ["--data-dir", data, "--distribute", "multiworker", "--out",
                                               tmp_path / "run", "--epochs", "1", "--img-size", "16", "--quiet"])
    assert code == 2 and stderr.startswith("error: ") and "TF_CONFIG" in stderr and "Traceback" not in stderr


class TwoReplicaStandIn:
    """The default one-device strategy claiming two replicas: enough to see what each lab does with the count
    (the real two-device numerics are checked above, on lab4_unet)."""

    num_replicas_in_sync = 2

    def scope(self):
        return tf.distribute.get_strategy().scope()


def test_distribute_returns_what_it_decided_and_leaves_the_settings_alone(monkeypatch):
    import labkit.runtime

    monkeypatch.setattr(labkit.runtime, "get_strategy", lambda name: TwoReplicaStandIn())
    settings = SimpleNamespace(distribute="mirrored", batch_size=3, lr=0.001, scale_lr=True)
    setup = labkit.runtime.distribute(settings)
    assert (setup.replicas, setup.global_batch_size, setup.lr_scale) == (2, 6, 2)
    assert setup.learning_rate == pytest.approx(0.002) and isinstance(setup.strategy, TwoReplicaStandIn)
    assert setup.record() == {"replicas": 2, "global_batch_size": 6, "lr_scale": 2, "learning_rate": setup.learning_rate}
    assert vars(settings) == {"distribute": "mirrored", "batch_size": 3, "lr": 0.001, "scale_lr": True}


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    """A few small files in each lab's layout, so six lab runs stay quick."""
    from labkit.data.synthetic import xray_dataset
    from labkit.data.synthetic.atrium import atrium_dataset
    from labkit.data.synthetic.bone_skin import bone_skin_dataset
    from labkit.data.synthetic.dermoscopy import dermoscopy_dataset
    from labkit.data.synthetic.skin_lesions7 import isic2018_task3_dataset

    root = tmp_path_factory.mktemp("tiny_sets")
    lab2 = bone_skin_dataset(n_train=4, n_val=2, size=32, root=root / "lab2")
    return {"lab4_unet": xray_dataset(n_images=8, size=32, root=root / "xray"), "lab4_transfer": lab2,
            "lab4_activation_map": lab2,
            "mobilenet_segmentation": dermoscopy_dataset(n_train=8, n_test=2, size=32, root=root / "isic2016"),
            "resnet50_classification": isic2018_task3_dataset(n_images=56, size=32, min_per_class=6,
                                                              root=root / "isic2018"),
            "unet3d_segmentation": atrium_dataset(n_volumes=4, n_test=1, shape=(24, 24, 16), root=root / "atrium")}


#: Each lab at its smallest: (lab, flags, the learning rates its optimizer holds without --scale-lr).
EVERY_LAB = [
    ("lab4_unet", ["--img-size", "32", "--base", "2"], [1e-3]),
    ("lab4_transfer", ["--dataset", "bone", "--method", "scratch", "--weights", "none", "--img-size", "32",
                       "--n-base", "2"], [1e-3]),
    ("lab4_activation_map", ["--img-size", "32", "--n-base", "2"], [1e-3]),
    ("mobilenet_segmentation", ["--img-size", "32", "--weights", "none", "--encoder-lr", "5e-4"], [1e-3, 5e-4]),
    ("resnet50_classification", ["--img-size", "32", "--weights", "none"], [1e-3]),
    ("unet3d_segmentation", ["--base", "2", "--depth", "2", "--patch", "16", "16", "8", "--precise-bn"], [1e-3]),
]


def learning_rates(model):
    """Every learning rate of the model a lab trained: the optimizer's, then each group's (GroupedOptimizer).

    (model.keras holds no optimizer: the rates are read from the model `fit` was given.)"""
    optimizer = model.optimizer
    groups = [optimizer.group_learning_rate(name) for name in getattr(optimizer, "group_names", [])]
    return np.array([float(keras.ops.convert_to_numpy(optimizer.learning_rate)), *groups])


@pytest.mark.slow
@pytest.mark.parametrize("lab, flags, rates", EVERY_LAB, ids=[lab for lab, _, _ in EVERY_LAB])
def test_every_lab_feeds_the_global_batch_and_scales_its_learning_rates(lab_runner, monkeypatch, tmp_path, tiny_sets,
                                                                        lab, flags, rates):
    import labkit.runtime
    import labkit.training

    monkeypatch.setattr(labkit.runtime, "get_strategy", lambda name: TwoReplicaStandIn())
    batch_sizes, models, real_fit = [], [], labkit.training.fit

    def spying_fit(model, train, *args, **kwargs):
        batch_sizes.append(int(next(iter(train.take(1)))[0].shape[0]))
        models.append(model)
        return real_fit(model, train, *args, **kwargs)

    monkeypatch.setattr(labkit.training, "fit", spying_fit)
    out = tmp_path / "run"
    code, stdout, stderr = lab_runner(lab, ["--data-dir", tiny_sets[lab], *flags, "--epochs", "1", "--batch-size", "2",
                                            "--lr", "0.001", "--scale-lr", "--quiet", "--out", out])
    assert code == 0, stderr
    assert "2 replicas: global batch 4 (2 per replica), learning rate × 2 (--scale-lr)" in stdout
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert (settings["replicas"], settings["global_batch_size"], settings["lr_scale"]) == (2, 4, 2)
    assert settings["lr"] == 0.001 and settings["learning_rate"] == pytest.approx(0.002)
    assert batch_sizes and set(batch_sizes) == {4}  # every model trained on batches of --batch-size × replicas
    np.testing.assert_allclose(learning_rates(models[-1]), 2 * np.array(rates), rtol=1e-6)  # every rate × 2


MIRRORED_LABS = """
import runpy
import keras
results = {}
for lab, out, argv in json.loads(sys.argv[1]):
    sys.argv = [lab + ".py", *argv, "--out", out]
    try:
        runpy.run_path(os.path.join(LABS_DIR, lab + ".py"), run_name="__main__")
    except SystemExit as exit:
        code = exit.code
    except Exception as error:  # noqa: BLE001 - one lab's failure must not hide the others' results
        code = f"{type(error).__name__}: {str(error)[:200]} … {str(error)[-400:]}"
    results[lab] = {"code": code}
    if code == 0:
        results[lab]["settings"] = json.load(open(os.path.join(out, "config.json")))["settings"]
        results[lab]["metrics"] = json.load(open(os.path.join(out, "metrics.json")))
    keras.backend.clear_session()
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def mirrored_lab_runs(tiny_sets, tmp_path_factory):
    """One process, CPU split in two logical devices: every lab for one epoch under a real MirroredStrategy."""
    tmp = tmp_path_factory.mktemp("mirrored_labs")
    plan = [(lab, str(tmp / lab), [*map(str, ["--data-dir", tiny_sets[lab], *flags]), "--epochs", "1",
                                   "--batch-size", "2", "--distribute", "mirrored", "--quiet"])
            for lab, flags, _ in EVERY_LAB]
    script = SPLIT_CPU.format(root=str(ROOT)) + MIRRORED_LABS.replace("LABS_DIR", repr(str(ROOT / "labs")))
    result = subprocess.run([sys.executable, "-c", script, json.dumps(plan)], capture_output=True, text=True,
                            timeout=1200, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "root": tmp}


@pytest.mark.slow
@pytest.mark.parametrize("lab", [lab for lab, _, _ in EVERY_LAB])
def test_every_lab_trains_under_a_real_two_device_mirrored_strategy(mirrored_lab_runs, lab):
    """The 3D lab (one validation patch) and ResNet50 (39 training and 9 validation images, global batch 4) have
    final batches smaller than the replica count: they train because `even_replica_batches` leaves no replica
    empty and the model is built from one replica's first batch (see the two tests below)."""
    run = mirrored_lab_runs[lab]
    assert run["code"] == 0, run
    settings = run["settings"]
    assert (settings["distribute"], settings["replicas"], settings["global_batch_size"]) == ("mirrored", 2, 4)
    assert settings["precise_bn"] is (lab == "unet3d_segmentation")  # its statistics are estimated across replicas
    assert np.isfinite(float(run["metrics"]["final"]["loss"]))
    assert (mirrored_lab_runs["root"] / lab / "model.keras").is_file()


def test_even_replica_batches_leave_no_replica_empty_and_keep_every_item_once():
    from labkit.data.pipeline import even_replica_batches

    def batches(n, batch, replicas, shuffle=False):
        data = tf.data.Dataset.range(n)
        data = (data.shuffle(n, seed=0) if shuffle else data).batch(batch)
        return [list(map(int, b)) for b in even_replica_batches(data, n, batch, replicas)]

    assert batches(9, 4, 2) == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]  # a final batch of 1 joins the one before it
    assert batches(1, 4, 2) == [[0, 0]]  # fewer items than replicas: every replica gets every item once
    assert batches(3, 4, 4) == [[0, 1, 2] * 4]
    shuffled = batches(13, 4, 2, shuffle=True)
    assert [len(b) for b in shuffled] == [4, 4, 5] and sorted(sum(shuffled, [])) == list(range(13))
    data = tf.data.Dataset.range(9).batch(4)
    for n, batch, replicas in [(9, 4, 1), (10, 4, 2), (11, 4, 2), (8, 4, 2), (3, 4, 2)]:  # nothing to regroup
        assert even_replica_batches(data, n, batch, replicas) is data
    infinite = data.repeat()
    assert even_replica_batches(infinite, 9, 4, 2) is infinite


def test_a_mapped_and_regrouped_training_dataset_keeps_its_epoch_stream():
    """`labkit.training.fit` trains a builder's training dataset epoch by epoch from its `EpochStream` (what makes
    --resume exact): mapping it (Labs 1–3 map labels to targets) and regrouping it for replicas keep the stream,
    each epoch mapped and regrouped alike."""
    from labkit.data.pipeline import array_dataset, epoch_stream, even_replica_batches, map_batches

    images = np.arange(9, dtype=np.float32).reshape(9, 1, 1, 1)
    data = array_dataset(images, np.zeros_like(images), 4, shuffle=True, seed=3)
    regrouped = even_replica_batches(map_batches(data, lambda x, y: (x, y + 1)), 9, 4, replicas=2)
    stream, original = epoch_stream(regrouped), epoch_stream(data)
    assert stream is not None and stream.steps_per_epoch == 2
    for epoch in (0, 3):
        items = [batch[0].numpy().ravel().tolist() for batch in original.epoch(epoch)]
        batches = list(stream.epoch(epoch))
        assert [b[0].numpy().ravel().tolist() for b in batches] == [items[0], items[1] + items[2]]
        assert all(np.all(b[1].numpy() == 1) for b in batches)
    assert [b[0].numpy().ravel().tolist() for b in stream.epoch(0)] != \
        [b[0].numpy().ravel().tolist() for b in stream.epoch(3)]  # a new order every epoch


EVEN_EVALUATION = """
import numpy as np
import keras
from labkit.data.pipeline import even_replica_batches
from labkit.metrics import dice_coef
from labkit.runtime import get_strategy

rng = np.random.default_rng(0)
x = rng.random((9, 8, 8, 1)).astype("float32")
y = (rng.random((9, 8, 8, 1)) > 0.5).astype("float32")

def network():
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 3, padding="same")(inputs))
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(hidden))

keras.utils.set_random_seed(0)
weights = network().get_weights()

def evaluate(strategy, n):
    with strategy.scope():
        model = network()
        model.set_weights(weights)
        model.compile(loss="binary_crossentropy", metrics=[dice_coef, "binary_accuracy"])
    data = tf.data.Dataset.from_tensor_slices((x[:n], y[:n])).batch(4)
    return model, model.evaluate(even_replica_batches(data, n, 4, strategy.num_replicas_in_sync), verbose=0,
                                 return_dict=True)

results = {}
for n, groups in [(1, [(0, 1)]), (3, [(0, 2), (2, 3)]), (9, [(0, 2), (2, 4), (4, 7), (7, 9)])]:
    model, single = evaluate(tf.distribute.get_strategy(), n)
    _, mirrored = evaluate(get_strategy("mirrored"), n)
    # batch-wide Dice under two replicas: the mean over the replicas' batches, none of them empty
    replica_dice = np.mean([float(dice_coef(y[a:b], model.predict(x[a:b], verbose=0))) for a, b in groups])
    results[n] = {"single": single, "mirrored": mirrored, "replica_dice": replica_dice}
print(json.dumps(results))
"""


@pytest.mark.slow
def test_two_replica_validation_counts_every_item_once_like_one_device():
    """Validation sets of 1, 3 and 9 items, global batch 4, two replicas (BatchNorm, batch-wide Dice): the first
    batch of 3 splits 2 + 1 (Keras's own first-batch build fails on it), 9 would end on a batch of 1 (an empty
    replica), 1 is fewer items than replicas. Loss and accuracy equal one device's; Dice is the mean over the
    replicas' batches with no empty replica counted (and the lone item's Dice exactly)."""
    script = SPLIT_CPU.format(root=str(ROOT)) + textwrap.dedent(EVEN_EVALUATION)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    for n, run in json.loads(result.stdout.strip().splitlines()[-1]).items():
        single, mirrored = run["single"], run["mirrored"]
        for key in ("loss", "binary_accuracy"):
            assert mirrored[key] == pytest.approx(single[key], rel=1e-5), (n, key)
        assert mirrored["dice_coef"] == pytest.approx(run["replica_dice"], rel=1e-5), n
        if n == "1":
            assert mirrored["dice_coef"] == pytest.approx(single["dice_coef"], rel=1e-5)
