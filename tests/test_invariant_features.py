"""InvariantFeatures, the store as a torch layer: equal to ``Basis.encode`` for every default
setting (one mixed batch per radius), differentiable twice (gradcheck), invariant under each
setting's operations, one layout equal to the CFT's slots, and a state dict tied to its basis."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from basisdb import TRANSLATION_DENOMINATOR, BasisStore, get_setting  # noqa: E402
from basisdb.model import CheckpointError  # noqa: E402
from basisdb.model.data import StructureFeaturizer  # noqa: E402
from basisdb.model.invariant_features import InvariantFeatures  # noqa: E402

DEFAULT_HALLS = np.array([get_setting(group=group).hall_number for group in range(1, 231)])


@pytest.fixture(scope="module")
def store(small_store):
    with BasisStore.open(small_store) as opened:
        yield opened


def _mixed_batch(points_per_setting: int, seed: int = 0):
    """Positions of every default setting in one batch, many outside [0, 1)."""
    rng = np.random.default_rng(seed)
    halls = np.repeat(DEFAULT_HALLS, points_per_setting)
    return rng.uniform(-2.0, 3.0, (len(halls), 3)), halls


@pytest.mark.parametrize("radius", [2, 4])
@pytest.mark.parametrize("real", [True, False])
def test_equals_basis_encode_for_every_default_setting_in_one_mixed_batch(store, radius, real):
    layer = InvariantFeatures(store, radius, real=real)
    positions, halls = _mixed_batch(6)
    out = layer(torch.from_numpy(positions), torch.from_numpy(halls)).numpy()
    assert out.dtype == (np.float64 if real else np.complex128) and out.shape == (len(halls), layer.width)
    for hall in DEFAULT_HALLS:  # the reference, one setting at a time
        rows = halls == hall
        basis = store.basis(hall=int(hall), radius=radius)
        expected = basis.encode(positions[rows], real=real)
        assert np.abs(out[rows, : basis.n_basis] - expected).max(initial=0) < 1e-12, hall
        assert not out[rows, basis.n_basis :].any(), hall  # zeros beyond a setting's own basis
        assert layer.n_basis_of[int(hall)] == basis.n_basis


def test_one_setting_needs_no_hall_and_keeps_the_batch_shape(store):
    layer = InvariantFeatures(store, 4, groups=["P6_3/mmc"])
    positions = torch.rand(2, 5, 3, dtype=torch.float64)
    out = layer(positions)
    assert out.shape == (2, 5, store.basis(group=194, radius=4).n_basis)
    assert torch.equal(out, layer(positions, hall=488))
    expected = store.basis(group=194, radius=4).encode(positions.reshape(-1, 3).numpy(), real=True)
    assert np.abs(out.reshape(10, -1).numpy() - expected).max() < 1e-12


def test_a_hall_tensor_broadcasts_over_the_batch(store):
    layer = InvariantFeatures(store, 3, groups=[1, 62, 194, 227])
    positions = torch.rand(4, 7, 3, dtype=torch.float64)
    halls = torch.tensor([1, 292, 488, 525])[:, None]  # one setting per structure, (4, 1)
    out = layer(positions, halls)
    for structure, hall in enumerate([1, 292, 488, 525]):
        assert torch.equal(out[structure], layer(positions[structure], torch.tensor(hall).expand(7)))


def test_slots_layout_is_the_cfts_input(store):
    featurizer = StructureFeaturizer(store, 4)
    layer = InvariantFeatures(store, 4, layout="slots")
    assert layer.width == featurizer.n_slots
    positions, halls = _mixed_batch(3, seed=1)
    out = layer(torch.from_numpy(positions), torch.from_numpy(halls)).numpy()
    for hall in DEFAULT_HALLS:
        rows = halls == hall
        expected = featurizer.features(int(hall), positions[rows]).astype(np.float64)
        assert np.abs(out[rows] - expected).max() < 1e-6, hall  # the featurizer stores float32


@pytest.mark.parametrize("real", [True, False])
def test_gradcheck_first_and_second_derivatives(store, real):
    layer = InvariantFeatures(store, 3, groups=[1, 14, 194, 227], real=real)
    positions = torch.rand(4, 2, 3, dtype=torch.float64, requires_grad=True)
    halls = torch.tensor([1, 81, 488, 525])[:, None]

    def features(x):
        out = layer(x, halls)
        return torch.view_as_real(out) if out.is_complex() else out

    assert torch.autograd.gradcheck(features, (positions,), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradgradcheck(features, (positions,), eps=1e-6, atol=1e-6)


def test_forces_of_a_learned_potential_train(store):
    """A second derivative in use: a loss on the gradient (forces) trains the weights."""
    layer = InvariantFeatures(store, 3, groups=["Pnma"])
    head = torch.nn.Linear(layer.width, 1, dtype=torch.float64)
    positions = torch.rand(16, 3, dtype=torch.float64, requires_grad=True)
    energy = head(layer(positions)).sum()
    (forces,) = torch.autograd.grad(energy, positions, create_graph=True)
    forces.square().sum().backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_invariant_under_every_operation_of_every_default_setting_in_float32(store):
    layer = InvariantFeatures(store, 4)
    rng = np.random.default_rng(2)
    originals, images, halls = [], [], []
    for hall in DEFAULT_HALLS:
        setting = get_setting(hall=int(hall))
        x = rng.random((2, 3))
        moved = np.einsum("oij,nj->oni", setting.rotations, x) + setting.translations[:, None] / TRANSLATION_DENOMINATOR
        originals.append(np.broadcast_to(x, moved.shape).reshape(-1, 3))
        images.append(moved.reshape(-1, 3))
        halls.append(np.full(moved.shape[0] * moved.shape[1], hall))
    halls = torch.from_numpy(np.concatenate(halls))
    before = layer(torch.tensor(np.concatenate(originals), dtype=torch.float32), halls)
    after = layer(torch.tensor(np.concatenate(images), dtype=torch.float32), halls)
    assert before.dtype == torch.float32 and len(halls) == 2 * sum(
        get_setting(hall=int(h)).n_operations for h in DEFAULT_HALLS
    )
    assert (after - before).abs().max() < 1e-5


def test_float32_and_complex64_follow_the_positions(store):
    layer = InvariantFeatures(store, 3, groups=[225], real=False)
    x = torch.rand(5, 3)
    assert layer(x).dtype == torch.complex64 and layer(x.double()).dtype == torch.complex128
    expected = store.basis(group=225, radius=3).encode(x.double().numpy())
    assert np.abs(layer(x).numpy() - expected).max() < 2e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_a_cuda_device(store):
    layer = InvariantFeatures(store, 4).to("cuda")
    positions, halls = _mixed_batch(4)
    on_gpu = layer(torch.from_numpy(positions).cuda(), torch.from_numpy(halls).cuda())
    on_cpu = InvariantFeatures(store, 4)(torch.from_numpy(positions), torch.from_numpy(halls))
    assert on_gpu.device.type == "cuda" and (on_gpu.cpu() - on_cpu).abs().max() < 1e-12


def test_the_state_dict_carries_the_basis_identity(store):
    layer = InvariantFeatures(store, 3, groups=[62, 194])
    state = layer.state_dict()
    assert state["_extra_state"]["store_fingerprint"] == store.fingerprint
    saved = io.BytesIO()
    torch.save(state, saved)
    saved.seek(0)
    again = InvariantFeatures(store, 3, groups=[62, 194])
    again.load_state_dict(torch.load(saved))  # the same basis: accepted
    for other in (
        InvariantFeatures(store, 3, groups=[62, 194], real=False),
        InvariantFeatures(store, 4, groups=[62, 194]),
        InvariantFeatures(store, 3, groups=[62, 193]),
    ):
        with pytest.raises(CheckpointError, match="build the layer from the store and settings it was saved with"):
            other.load_state_dict(state)


def test_buffers_move_with_the_module(store):
    layer = InvariantFeatures(store, 2, groups=[2])
    names = {name for name, _ in layer.named_buffers()}
    assert {"frequencies", "values", "rows", "setting_index"} <= names
    assert all(buffer.device.type == "cpu" for buffer in layer.buffers())
    assert "radius=2.0, settings=1" in repr(layer)


def test_bad_input_is_refused_by_name(store):
    layer = InvariantFeatures(store, 2, groups=[1, 2])
    x = torch.rand(3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="give the Hall number of each position"):
        layer(x)
    with pytest.raises(ValueError, match=r"Hall number\(s\) \[3\] are not served"):
        layer(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="Hall numbers run from 1 to 530"):
        layer(x, torch.tensor([1, 2, 999]))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        layer(torch.rand(3, 2), torch.tensor([1, 2, 2]))
    with pytest.raises(TypeError, match="float32 or float64"):
        layer(torch.zeros(3, 3, dtype=torch.long), torch.tensor([1, 2, 2]))
    with pytest.raises(ValueError, match="layout"):
        InvariantFeatures(store, 2, layout="dense")
    with pytest.raises(Exception, match="radius 5"):
        InvariantFeatures(store, 5)


def test_the_readmes_layer_block_runs_as_written(small_store, monkeypatch):
    from .helpers import readme_python_block

    monkeypatch.setenv("BASISDB_STORE", str(small_store))
    namespace: dict = {}
    exec(readme_python_block('layer = InvariantFeatures(store, radius=4, groups=["Pnma"])'), namespace)
    features, x = namespace["features"], namespace["x"]
    expected = namespace["store"].basis(group="Pnma", radius=4).encode(x.detach().reshape(-1, 3).numpy(), real=True)
    assert np.abs(features.detach().reshape(-1, features.shape[-1]).numpy() - expected).max() < 1e-12


def test_the_gathered_pass_for_a_gpu_equals_the_runs_by_setting(store):
    """On a GPU a mixed batch is one gathered pass, on a CPU one run per setting: both are
    exercised here, on the CPU, and agree."""
    for real in (True, False):
        layer = InvariantFeatures(store, 3, groups=[1, 62, 194, 225, 227], real=real, layout="slots")
        positions, halls = torch.rand(40, 3, dtype=torch.float64), torch.tensor([1, 292, 488, 523, 525] * 8)
        setting = layer._setting_index(halls, halls.shape, positions.device)
        coefficients = torch.complex(layer.values[:, 0], layer.values[:, 1])
        runs = layer._by_setting(positions, setting, coefficients)
        gathered = layer._gathered(positions, setting, coefficients)
        assert (runs - gathered).abs().max() < 1e-12
