"""Lab 1 Tasks 1–3 (CM2003): a two-layer perceptron learns the logic gates AND and XOR.

Tasks 1–2 (--model numpy, the default): inputs → hidden layer (sigmoid) → output (sigmoid), loss ½Σ(output −
target)², backpropagation written out in NumPy (`labkit.numpy_net`) and full-batch gradient descent. AND is learnt by
any network; XOR needs at least two hidden units (one hidden unit gives a monotone function of one straight-line
projection, so one of the four points stays on the wrong side). The course sweeps the hidden units (1, 2, 5, 10, 50)
and the iterations (10–2000).

Task 3 (--model keras): the course's Keras MLP, Dense(n_unit, relu) → Dense(1, sigmoid), mean squared error, SGD
at lr 0.01 for 2000 epochs; the course compares n_unit 1 and 10. The four points are one batch, so one epoch is one
update, the same as one iteration of the NumPy network.

The data is the gate's truth table (no --data-dir). The run folder gets config.json, history.csv (epoch = iteration:
loss, and accuracy for Keras), metrics.json (final loss, accuracy on the four points, each point's output),
curves.png (loss against iterations), decision_boundary.png (the four points over the network's output field) and
the trained network (weights.npz for NumPy, model.keras for Keras: the network at its lowest loss). Every run takes
seconds.

example:
  python labs/lab1_perceptron.py --gate and
  python labs/lab1_perceptron.py --gate xor --hidden 1
  python labs/lab1_perceptron.py --gate xor --sweep hidden=1,2,5,10,50
  python labs/lab1_perceptron.py --gate xor --sweep iterations=10,100,500,2000
  python labs/lab1_perceptron.py --model keras --sweep hidden=1,10
"""

import time

import numpy as np

from labkit import flags, lab, numpy_net
from labkit.history import summarize
from labkit.plots import decision_boundary_figure
from labkit.run_folder import atomic_write
from labkit.training import compile_model, fit

import keras  # after labkit, which quiets TensorFlow's start-up logging
import tensorflow as tf
from matplotlib.figure import Figure

COURSE = {"gate": "xor", "model": "numpy", "iterations": 2000, "seed": 42, "precision": "float32",
          "stop_dead": False}  # a dead one-unit ReLU network is a result here, not a failure to stop for
#: Per model: hidden units and learning rate (Task 3: n_unit 10, SGD lr 0.01).
MODEL_DEFAULTS = {"numpy": {"hidden": 2, "lr": 2.0}, "keras": {"hidden": 10, "lr": 0.01}}
#: Per model: the loss it trains on, by name and as a function of (outputs, targets).
LOSSES = {"numpy": ("½Σ(output − target)² (sum of squares)", numpy_net.sum_of_squares),
          "keras": ("mean squared error", lambda outputs, y: float(np.mean((outputs - y) ** 2)))}
#: Shared lab flags that mean nothing for four fixed points, with the reason given when one is passed.
NOT_USED = {"data_dir": "the data is the gate's truth table", "batch_size": "the four points are one batch",
            "img_size": "the inputs are two numbers", "epochs": "use --iterations (one epoch is one update here)",
            "distribute": "four points train on one device", "scale_lr": "four points train on one device",
            "resume": "a run takes seconds: rerun it with --overwrite",
            "folds": "four points cannot be split into folds", "fold": "four points cannot be split into folds"}


def parse_args(argv=None):
    parser = flags.lab_parser(__doc__, COURSE)
    parser.add_argument("--gate", choices=tuple(numpy_net.GATES), help="logic gate to learn (course: and, then xor; "
                        "default: xor)")
    parser.add_argument("--model", choices=tuple(MODEL_DEFAULTS), help="numpy: the hand-written network (Tasks "
                        "1–2); keras: the course's Keras MLP (Task 3) (default: numpy)")
    parser.add_argument("--hidden", type=flags.positive_int, help="hidden units (course: 1, 2, 5, 10, 50; default: "
                        "2 for numpy, 10 for keras)")
    parser.add_argument("--iterations", type=flags.positive_int, help="gradient-descent updates, for keras epochs "
                        "(course: 10–2000; default: 2000)")
    return parser.parse_args(argv)


def train_numpy(settings, X, y, run):
    """Tasks 1–2: the NumPy network. Returns ``(history, predict_fn, train_seconds)``; writes ``weights.npz``."""
    start = time.perf_counter()
    params, losses = numpy_net.train(X, y, settings.hidden, settings.iterations, settings.lr, settings.seed)
    seconds = time.perf_counter() - start
    atomic_write(run.file("weights.npz"), lambda tmp: np.savez(open(tmp, "wb"), **params))
    history = {"epoch": list(range(1, len(losses) + 1)), "loss": [float(v) for v in losses]}
    run.write_csv("history.csv", [dict(zip(history, row)) for row in zip(*history.values())])
    return history, lambda x: numpy_net.predict(params, x), seconds


def gate_mlp(n_unit):
    """The course's Task 3 network: Dense(n_unit, relu) → Dense(1, sigmoid) on two inputs."""
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(n_unit, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")], name="gate_mlp")


def record_interval(iterations, records=50):
    """Updates per recorded row: the largest divisor of `iterations` that keeps the rows near `records` or more."""
    return max(d for d in range(1, max(1, iterations // records) + 1) if iterations % d == 0)


def train_keras(settings, X, y, run):
    """Task 3: the Keras MLP through labkit's `fit`. Returns ``(history, predict_fn, train_seconds)``.

    One Keras epoch per update would spend far more time in per-epoch bookkeeping than in training, so each
    recorded epoch runs `record_interval` full-batch updates: ``history.csv`` counts updates in its epoch column, and
    its loss and accuracy are Keras's means over that row's updates.
    """
    model = gate_mlp(settings.hidden)
    compile_model(model, settings.lr, "mse", metrics=["binary_accuracy"],
                  optimizer=keras.optimizers.SGD(learning_rate=settings.lr))
    steps = record_interval(settings.iterations)
    data = tf.data.Dataset.from_tensors((X.astype("float32"), y.astype("float32"))).repeat()
    options = {**lab.fit_options(settings), "verbose": 0}  # a few seconds; a line per recorded epoch is noise
    history = fit(model, data, None, settings.iterations // steps, run=run, monitor="loss", steps_per_epoch=steps,
                  **options)
    history["epoch"] = [epoch * steps for epoch in history["epoch"]]
    run.write_csv("history.csv", [dict(zip(history, row)) for row in zip(*history.values())])
    seconds = float(sum(history.pop("seconds")))
    return history, lambda x: model.predict(x, batch_size=len(x), verbose=0), seconds


def curves_figure(history, title):
    """Loss (and accuracy, when recorded) against the update count in the history's epoch column."""
    keys = [k for k in ("loss", "binary_accuracy") if k in history]
    figure = Figure(figsize=(5 * len(keys), 3.8), layout="constrained")
    for axis, key in zip(figure.subplots(1, len(keys), squeeze=False)[0], keys):
        axis.plot(history["epoch"], history[key], marker="o" if len(history[key]) == 1 else None)
        axis.set(xlabel="iteration (full-batch update)", ylabel=key, title=key.replace("_", " "))
        axis.set_yscale("log" if key == "loss" and min(history[key]) > 0 else "linear")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    return figure


def point_table(X, y, outputs):
    """Each point's inputs, target, network output and predicted class (output > 0.5)."""
    return [{"input": [int(a) for a in x], "target": int(t), "output": round(float(o), 4), "predicted": int(o > 0.5)}
            for x, t, o in zip(X, y.ravel(), np.asarray(outputs).ravel())]


def main(argv=None):
    # Settings: explicit flags, then the course defaults; with --sweep, labkit.multirun runs this main once per value,
    # each into its own child folder, and compares them.
    args = parse_args(argv)
    flags.refuse_unused(args, NOT_USED, "lab1_perceptron")
    if lab.run_many(main, args, argv):
        return
    settings, run = lab.start_run("lab1_perceptron", args, COURSE, {})
    for key, value in MODEL_DEFAULTS[settings.model].items():
        setattr(settings, key, value if getattr(settings, key) is None else getattr(settings, key))
    lab.save_config(run, settings, f"built-in {settings.gate.upper()} truth table", 0)

    # Data and training: the four points of the truth table, one batch.
    X, y = numpy_net.logic_gate_data(settings.gate)
    trainer = train_numpy if settings.model == "numpy" else train_keras
    history, predict_fn, seconds = trainer(settings, X, y, run)

    # Evaluation: the trained network on the four points, and its output over the plane.
    outputs = np.asarray(predict_fn(X.astype("float32")), dtype=np.float64).reshape(y.shape)
    points = point_table(X, y, outputs)
    loss_name, loss_function = LOSSES[settings.model]
    final_loss = loss_function(outputs, y)
    accuracy = float(np.mean([p["predicted"] == p["target"] for p in points]))
    hidden_name = f"{settings.hidden} hidden unit{'s' if settings.hidden > 1 else ''}"
    title = (f"{settings.gate.upper()}, {settings.model} network, {hidden_name}, {settings.iterations} iterations, "
             f"lr {settings.lr}")
    boundary_title = f"{title}\nloss {final_loss:.4f}, accuracy {accuracy:.2f}"
    metrics = {**summarize(history, "loss"), "epochs_run": settings.iterations, "train_seconds": round(seconds, 3),
               "parameters": 4 * settings.hidden + 1,  # (2 inputs + 1 bias) per hidden unit, + hidden + 1 bias
               "loss_function": loss_name, "final_loss": final_loss, "accuracy": accuracy, "points": points}
    lab.finish_run(run, metrics, {
        "curves.png": curves_figure(history, title),
        "decision_boundary.png": decision_boundary_figure(predict_fn, X, y, boundary_title),
    }, summary=f"{settings.gate.upper()} with {hidden_name} ({settings.model}): final loss {final_loss:.4g}, "
               f"accuracy {accuracy:.2f}; outputs " + ", ".join(f"{p['input']}→{p['output']:.2f}" for p in points))


if __name__ == "__main__":
    lab.run_lab(main)
