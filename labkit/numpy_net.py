"""A two-layer network written out in NumPy (course Lab 1 Tasks 1–2): forward pass, backpropagation by hand and
full-batch gradient descent, on the logic gates AND, OR and XOR.

This is the one place in labkit where training is hand-written, on purpose: the lab is about seeing what Keras does
for you. The network is ``inputs → hidden layer (sigmoid) → one output unit (sigmoid)`` and the loss is the sum of
squares ``E = ½ Σ (output − target)²`` over the four points of the truth table. Its figure, the decision boundary, is
`labkit.plots.decision_boundary_figure`.

Example:
    >>> X, y = logic_gate_data("xor")
    >>> params, losses = train(X, y, hidden=2, iterations=2000, lr=2.0, seed=0)
    >>> predict(params, X).round(2).ravel()          # close to the targets 0, 1, 1, 0
"""

import numpy as np

from labkit.errors import require

#: Truth tables of the gates `logic_gate_data` knows, outputs for the inputs (0,0), (0,1), (1,0), (1,1).
GATES = {"and": (0, 0, 0, 1), "or": (0, 1, 1, 1), "xor": (0, 1, 1, 0)}


def logic_gate_data(name):
    """The four points of a two-input logic gate.

    Args:
        name: ``"and"``, ``"or"`` or ``"xor"`` (any case).

    Returns:
        ``(X, y)``: float64 arrays of shape (4, 2) (inputs (0,0), (0,1), (1,0), (1,1)) and (4, 1) (targets 0/1).

    Raises:
        LabkitInputError: an unknown gate.
    """
    key = str(name).lower()
    require(key in GATES, f"unknown logic gate {name!r}: choose one of {', '.join(GATES)}")
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    return X, np.array(GATES[key], dtype=np.float64).reshape(4, 1)


def sigmoid(z):
    """The logistic function ``1 / (1 + exp(−z))``, computed without overflow for large ``|z|``."""
    return np.exp(-np.logaddexp(0.0, -z))


def init_params(n_inputs, hidden, seed=0):
    """Random weights and zero biases of a ``n_inputs → hidden → 1`` network.

    Weights are normal with standard deviation ``1/√fan_in`` (LeCun), so a wide hidden layer does not start with its
    output unit saturated (where the sigmoid's gradient vanishes).

    Returns:
        ``{"W1": (n_inputs, hidden), "b1": (hidden,), "W2": (hidden, 1), "b2": (1,)}``.
    """
    require(int(hidden) >= 1, f"the hidden layer needs at least one unit, got {hidden}")
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(0, 1 / np.sqrt(n_inputs), (n_inputs, hidden)), "b1": np.zeros(hidden),
            "W2": rng.normal(0, 1 / np.sqrt(hidden), (hidden, 1)), "b2": np.zeros(1)}


def parameter_count(params):
    """Number of weights and biases in `params`."""
    return int(sum(value.size for value in params.values()))


def forward(params, X):
    """The forward pass.

    Args:
        params: weights from `init_params` / `train`.
        X: inputs, shape (n, n_inputs).

    Returns:
        ``(output, hidden)``: the output unit's activations (n, 1) and the hidden layer's (n, hidden).
    """
    hidden = sigmoid(X @ params["W1"] + params["b1"])
    return sigmoid(hidden @ params["W2"] + params["b2"]), hidden


def sum_of_squares(output, y):
    """The loss ``½ Σ (output − y)²`` over every point."""
    return 0.5 * float(np.sum((output - y) ** 2))


def backward(params, X, y):
    """Loss and its gradient with respect to every parameter, by backpropagation.

    With ``h = σ(X W1 + b1)`` and ``o = σ(h W2 + b2)``, the chain rule gives (σ' = σ (1 − σ)):
    ``δo = (o − y) o (1 − o)``, ``∂E/∂W2 = hᵀ δo``, ``∂E/∂b2 = Σ δo``,
    ``δh = (δo W2ᵀ) h (1 − h)``, ``∂E/∂W1 = Xᵀ δh``, ``∂E/∂b1 = Σ δh``.

    Returns:
        ``(loss, gradients)`` with ``gradients`` keyed like `params`.
    """
    output, hidden = forward(params, X)
    delta_out = (output - y) * output * (1 - output)
    delta_hidden = (delta_out @ params["W2"].T) * hidden * (1 - hidden)
    gradients = {"W2": hidden.T @ delta_out, "b2": delta_out.sum(axis=0),
                 "W1": X.T @ delta_hidden, "b1": delta_hidden.sum(axis=0)}
    return sum_of_squares(output, y), gradients


def train(X, y, hidden=2, iterations=2000, lr=2.0, seed=0):
    """Full-batch gradient descent: every iteration one forward and backward pass over all points and one update.

    Args:
        X, y: inputs (n, n_inputs) and 0/1 targets (n, 1), e.g. from `logic_gate_data`.
        hidden: units in the hidden layer.
        iterations: gradient-descent updates.
        lr: learning rate (step size on the summed gradient).
        seed: seed of the initial weights.

    Returns:
        ``(params, loss_history)``: the trained weights and the loss after each update (``iterations`` values; the
        last one is the loss of the returned `params`).
    """
    require(int(iterations) >= 1, f"iterations must be at least 1, got {iterations}")
    require(float(lr) > 0, f"learning rate must be > 0, got {lr}")
    params = init_params(X.shape[1], hidden, seed)
    losses = []
    for _ in range(int(iterations)):
        _, gradients = backward(params, X, y)
        for key in params:
            params[key] = params[key] - lr * gradients[key]
        losses.append(sum_of_squares(predict(params, X), y))
    return params, np.array(losses)


def predict(params, X):
    """The network's outputs in (0, 1) for inputs `X` (n, n_inputs), shape (n, 1); threshold at 0.5 for a class."""
    return forward(params, X)[0]


__all__ = ["GATES", "backward", "forward", "init_params", "logic_gate_data", "parameter_count", "predict", "sigmoid",
           "sum_of_squares", "train"]
