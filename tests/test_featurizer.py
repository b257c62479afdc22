"""The symmetry-adapted Fourier features as a matminer featurizer, the way users run one."""

import pickle

import numpy as np
import pandas as pd
import pytest
from pymatgen.core.operations import SymmOp

from basisdb.model.featurizer import SymmetryFourierFeaturizer

from .helpers import REAL, real


@pytest.fixture(scope="module")
def elastic_rows(parsed_dataset):
    data = parsed_dataset("elastic_tensor", "log10_K_VRH").subset(np.arange(20))
    return pd.DataFrame({"material_id": data.ids, "structure": data.structures})


def test_featurize_dataframe_on_a_built_in_dataset(elastic_rows, small_store):
    """Twenty crystals of many space groups (bases of different sizes) in matminer's own
    ``featurize_dataframe``, with its worker processes: one column per label, all filled."""
    featurizer = SymmetryFourierFeaturizer(radius=4, store=small_store)
    table = featurizer.featurize_dataframe(elastic_rows, "structure", pbar=False)
    labels = featurizer.feature_labels()
    assert len(labels) == 4 * featurizer.n_slots and len(set(labels)) == len(labels)
    assert list(table.columns) == ["material_id", "structure", *labels]
    values = table[labels].to_numpy(dtype=float)
    assert values.shape == (20, len(labels)) and np.isfinite(values).all()
    groups = {structure.get_space_group_info()[1] for structure in elastic_rows["structure"]}
    assert len(groups) >= 5  # the fixed width is not an accident of one group
    assert (values != 0).any(axis=1).all()
    one_process = SymmetryFourierFeaturizer(radius=4, store=small_store)
    one_process.set_n_jobs(1)
    single = one_process.featurize_dataframe(elastic_rows, "structure", pbar=False)[labels].to_numpy(dtype=float)
    assert np.array_equal(values, single)


@pytest.mark.parametrize("name", REAL)
def test_the_same_crystal_redescribed_has_the_same_features(small_store, name):
    featurizer = SymmetryFourierFeaturizer(radius=4, store=small_store)
    structure = real(name)
    supercell = structure.copy()
    supercell.make_supercell([2, 1, 1])
    rotated = structure.copy()
    rotated.apply_operation(SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0, translation_vec=[0.3, -1.1, 2.0]))
    shuffled = structure.copy()
    shuffled.translate_sites(range(len(shuffled)), [0.13, 0.27, -0.41])  # another origin
    features = np.array(featurizer.featurize(structure))
    for other in (supercell, rotated, shuffled):
        assert np.abs(np.array(featurizer.featurize(other)) - features).max() < 1e-8


def test_statistics_choose_the_columns_and_options_are_checked(small_store):
    full = SymmetryFourierFeaturizer(radius=3, store=small_store)
    means = SymmetryFourierFeaturizer(radius=3, store=small_store, stats=("mean", "max"))
    structure = real("LiFePO4")
    n = full.n_slots
    assert means.feature_labels() == full.feature_labels()[:n] + full.feature_labels()[3 * n :]
    assert np.array_equal(
        np.array(means.featurize(structure)), np.array(full.featurize(structure))[np.r_[0:n, 3 * n : 4 * n]]
    )
    assert full.feature_labels()[n] == "std fourier slot 0 (r=3)"
    with pytest.raises(ValueError, match="stats must be some of"):
        SymmetryFourierFeaturizer(stats=("median",))
    with pytest.raises(ValueError, match="invariance must be one of"):
        SymmetryFourierFeaturizer(invariance="mirror")
    paper, spglib = full.citations()
    assert "2512.13989" in paper and "Spglib" in spglib and full.implementors()
    assert full.get_params()["radius"] == 3  # scikit-learn's parameter protocol, which matminer builds on


def test_it_pickles_without_its_open_store(small_store):
    featurizer = SymmetryFourierFeaturizer(radius=3, store=small_store)
    before = featurizer.featurize(real("TiO2"))
    copy = pickle.loads(pickle.dumps(featurizer))
    assert copy._encoder is None and copy.featurize(real("TiO2")) == before
