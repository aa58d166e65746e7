"""The hand-written NumPy two-layer network (Lab 1 Tasks 1–2): gradients, learning AND and XOR, and why one hidden
unit cannot learn XOR."""

import numpy as np
import pytest

from labkit.errors import LabkitInputError
from labkit.numpy_net import backward, init_params, logic_gate_data, parameter_count, predict, sum_of_squares, train
from labkit.plots import decision_boundary_figure


def test_logic_gate_data():
    X, y = logic_gate_data("XOR")
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.shape == (4, 1) and y.ravel().tolist() == [0, 1, 1, 0]
    assert logic_gate_data("and")[1].ravel().tolist() == [0, 0, 0, 1]
    assert logic_gate_data("or")[1].ravel().tolist() == [0, 1, 1, 1]
    with pytest.raises(LabkitInputError, match="nand"):
        logic_gate_data("nand")


def test_parameter_count():
    assert parameter_count(init_params(2, 5)) == 5 * (2 + 1) + (5 + 1)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 2, (6, 1)).astype(float)
    params = init_params(3, 4, seed=1)
    params = {k: v + rng.normal(0, 0.3, v.shape) for k, v in params.items()}  # non-zero biases too
    loss, gradients = backward(params, X, y)
    assert loss == pytest.approx(sum_of_squares(predict(params, X), y))
    eps = 1e-6
    for key, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {k: v.copy() for k, v in params.items()}
            shifted[key][index] += eps
            up = sum_of_squares(predict(shifted, X), y)
            shifted[key][index] -= 2 * eps
            down = sum_of_squares(predict(shifted, X), y)
            numeric[index] = (up - down) / (2 * eps)
        np.testing.assert_allclose(gradients[key], numeric, rtol=1e-5, atol=1e-9, err_msg=key)


def test_learns_and():
    X, y = logic_gate_data("and")
    for seed in range(3):
        params, losses = train(X, y, hidden=2, iterations=2000, lr=2.0, seed=seed)
        assert losses.shape == (2000,) and losses[-1] < 0.01 < losses[0]
        assert losses[-1] == pytest.approx(sum_of_squares(predict(params, X), y))
        assert ((predict(params, X) > 0.5) == (y > 0.5)).all()


@pytest.mark.parametrize("hidden, seeds", [(2, (0, 1, 2)), (5, range(5)), (50, range(3))])
def test_learns_xor_with_two_or_more_hidden_units(hidden, seeds):
    # Two hidden units can get stuck in a local minimum for some initialisations (seed 6 of 0–9 at lr 2.0 does,
    # at loss ≈ 0.25); these seeds do not, and wider layers learn from every seed tried.
    X, y = logic_gate_data("xor")
    for seed in seeds:
        params, losses = train(X, y, hidden=hidden, iterations=2000, lr=2.0, seed=seed)
        assert losses[-1] < 0.01, (hidden, seed)
        assert ((predict(params, X) > 0.5) == (y > 0.5)).all()


def test_one_hidden_unit_cannot_learn_xor():
    """One hidden sigmoid makes the output a monotone function of one projection p = w·x + b. For XOR,
    p(0,1) + p(1,0) = p(0,0) + p(1,1), so some 0-point has p at least that of some 1-point: the output of that
    0-point is at least that of that 1-point (or at most, if the function decreases). Such a pair costs at least
    ½·(0.5² + 0.5²) = 0.125 in the loss, and at 0.5 one of the four points is always misclassified."""
    X, y = logic_gate_data("xor")
    for seed in range(5):
        params, losses = train(X, y, hidden=1, iterations=2000, lr=2.0, seed=seed)
        assert losses.min() >= 0.125
        assert ((predict(params, X) > 0.5) == (y > 0.5)).sum() <= 3


def test_decision_boundary_figure():
    X, y = logic_gate_data("xor")
    params, _ = train(X, y, hidden=3, iterations=500, lr=2.0, seed=0)
    figure = decision_boundary_figure(lambda x: predict(params, x), X, y, title="XOR")
    axis = figure.axes[0]
    assert len(axis.collections) >= 5  # the 0.5 contour and the four points
    assert axis.images[0].get_array().shape == (201, 201)
