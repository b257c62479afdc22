import numpy as np
import pytest

from basisdb import InvalidCoordinatesError, build_basis

from .helpers import naive_features


@pytest.fixture(scope="module", params=[1, 62, 194, 227])
def basis(request):
    return build_basis(group=request.param, radius=6)


def test_encode_matches_naive_evaluation(basis):
    x = np.random.default_rng(1).normal(scale=3.0, size=(257, 3))  # beyond the unit cell too
    expected = naive_features(basis.routing, basis.frequencies, x)
    features = basis.encode(x)
    assert features.shape == (257, basis.n_basis) and features.dtype == np.complex128
    assert np.abs(features - expected).max() < 1e-11
    real = basis.encode(x, real=True)
    assert real.dtype == np.float64
    assert np.abs(real - naive_features(basis.real_routing, basis.frequencies, x).real).max() < 1e-11


def test_single_precision(basis):
    x = np.random.default_rng(2).random((64, 3))
    single = basis.encode(x, precision="single")
    assert single.dtype == np.complex64
    assert np.abs(single - basis.encode(x)).max() < 1e-4
    assert basis.encode(x, real=True, precision="single").dtype == np.float32


def test_periodic_and_empty(basis):
    x = np.random.default_rng(3).random((5, 3))
    shift = np.array([[3, -7, 1]])
    assert np.abs(basis.encode(x + shift) - basis.encode(x)).max() < 1e-11
    assert basis.encode(np.zeros((0, 3))).shape == (0, basis.n_basis)


def test_large_batches_are_chunked_consistently():
    basis = build_basis(group=1, radius=6)
    x = np.random.default_rng(4).random((5000, 3))
    full = basis.encode(x)
    assert np.abs(full[4321] - basis.encode(x[4321:4322])[0]).max() < 1e-12


@pytest.mark.parametrize(
    "bad, message",
    [
        ([[0.1, 0.2, np.nan]], r"finite; entry \[0, 2\] is nan"),
        ([[0.1, 0.2, 0.3], [np.inf, 0, 0]], r"finite; entry \[1, 0\] is inf"),
        ([0.1, 0.2, 0.3], r"shape \(N, 3\), got \(3,\).*frac\[None, :\]"),
        ([[0.1, 0.2]], r"shape \(N, 3\), got \(1, 2\)"),
        (np.zeros((2, 3, 1)), r"shape \(N, 3\), got \(2, 3, 1\)"),
        ([["a", "b", "c"]], "must be numbers"),
    ],
)
def test_bad_coordinates(bad, message):
    basis = build_basis(group=2, radius=2)
    with pytest.raises(InvalidCoordinatesError, match=message) as info:
        basis.encode(bad)
    assert isinstance(info.value, ValueError)


def test_bad_precision():
    with pytest.raises(InvalidCoordinatesError, match="precision must be one of"):
        build_basis(group=2, radius=2).encode(np.zeros((1, 3)), precision="half")
