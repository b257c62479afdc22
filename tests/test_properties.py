"""Property-based checks (hypothesis): any setting, any radius, any coordinates."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from basisdb import InvalidCoordinatesError, build_basis

from .helpers import moved_points

coordinates = hnp.arrays(
    np.float64, st.tuples(st.integers(1, 4), st.just(3)), elements=st.floats(-50, 50, allow_nan=False)
)


@settings(max_examples=80, deadline=None)
@given(hall=st.integers(1, 530), radius=st.floats(1.0, 4.5), x=coordinates)
def test_every_setting_is_invariant_and_its_real_basis_orthonormal(hall, radius, x):
    basis = build_basis(hall=hall, radius=radius)
    moved = basis.encode(moved_points(basis.setting, x))
    deviation = moved.reshape(basis.setting.n_operations, len(x), basis.n_basis) - basis.encode(x)
    assert np.abs(deviation).max(initial=0) <= 1e-10
    real_rows = basis.real_routing
    gram = (real_rows @ real_rows.conj().T).toarray()
    assert np.abs(gram - np.eye(basis.n_basis)).max(initial=0) <= 1e-12


@settings(max_examples=150, deadline=None)
@given(
    frac=st.one_of(
        hnp.arrays(hnp.floating_dtypes() | hnp.integer_dtypes(), hnp.array_shapes(max_dims=3, max_side=5)),
        st.lists(st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=2)), max_size=4), max_size=3),
    )
)
def test_encode_accepts_good_coordinates_and_names_bad_ones(frac):
    basis = build_basis(group=14, radius=2)
    try:
        features = basis.encode(frac)
    except InvalidCoordinatesError as error:
        assert "fractional coordinates" in str(error)
        return
    x = np.asarray(frac, dtype=np.float64)
    assert x.ndim == 2 and x.shape[1] == 3 and np.isfinite(x).all()
    assert features.shape == (len(x), basis.n_basis) and np.isfinite(features).all()
