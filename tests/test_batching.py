"""The CFT's input path: distinct feature rows, batches and the attention, against direct
computation and PyTorch's own Transformer as oracles, on real crystals of many groups."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from basisdb import BasisStore, crystal_frames
from basisdb.model.data import (
    RADIAL_CENTRES,
    SizeGroups,
    StructureFeaturizer,
    centring_classes,
    collate,
    lattice_features,
    pair_radial,
)
from basisdb.model.encoded import EncodedStructure
from basisdb.model.models import (
    BiasedTransformer,
    CFTConfig,
    CrystalFourierTransformer,
    attention_dropping_copies,
)
from basisdb.model.modules import AtomEnvironment, CompositionStatistics, element_property_table
from basisdb.model.training import cft_collate, collate_by_size, predict_normalized, shuffled_batches, size_batches

from .helpers import randomize_pair_terms


@pytest.fixture(scope="module")
def encoded(small_store, real_crystals):
    """Every 8th real crystal (about 22 groups, 1-100+ atoms), encoded at radius 3."""
    featurizer = StructureFeaturizer(BasisStore.open(small_store), radius=3)
    cells = real_crystals[::8]
    return featurizer, cells, [featurizer.encode(cell) for cell in cells]


def test_distinct_rows_rebuild_every_frame_exactly(encoded):
    """The rows give every kept atom (one per centring class) its features in every frame, and
    the atoms a centring translation relates to it have the same ones."""
    featurizer, cells, items = encoded
    shared = 0
    for cell, item in zip(cells, items):
        framed = crystal_frames(cell, symprec=featurizer.symprec, invariance=featurizer.invariance)
        hall = item.hall_number
        direct = np.stack([featurizer.features(hall, positions) for positions in framed.positions])  # every atom
        classes = centring_classes(framed.standardization.primitive_atoms)
        assert np.array_equal(item.frames, direct[:, classes[:, 0]]), cell.label
        copies = direct[:, classes]  # (F, M, C, n_slots)
        assert np.allclose(copies, copies[:, :, :1], atol=1e-6), cell.label
        assert len(np.unique(item.rows, axis=0)) == len(item.rows)  # distinct
        assert item.row_index.shape == (item.n_frames, item.n_atoms) and item.row_index.max() < len(item.rows)
        shared += item.n_frames * item.n_atoms - len(item.rows)
    assert shared > 0  # orbits and frames share rows, so the positional encoder runs on fewer rows
    assert {item.n_copies for item in items} >= {1, 2, 4}  # primitive, body- and face-centred cells


def test_collate_gives_each_atom_its_own_features_in_every_frame(encoded):
    _, _, items = encoded
    batch = collate(items, frames="all")
    features = batch.rows[batch.row_of].numpy()  # (B, N, n_slots)
    sequence = 0
    for k, item in enumerate(items):
        distinct, weights = item.distinct_frames
        for f, w in zip(distinct, weights):
            assert np.array_equal(features[sequence, : item.n_atoms], item.frames[f])
            assert not batch.mask[sequence, item.n_atoms :].any() and int(batch.owner[sequence]) == k
            assert float(batch.weight[sequence]) == pytest.approx(w)
            sequence += 1
        for f in set(range(item.n_frames)) - set(distinct):  # a repeat of a frame in the batch
            assert any(np.array_equal(item.row_index[f], item.row_index[g]) for g in distinct)
    assert sequence == len(batch.owner)
    assert np.array_equal(
        batch.row_structure.numpy(), np.repeat(np.arange(len(items)), [len(item.rows) for item in items])
    )
    assert np.allclose(torch.zeros(len(items)).index_add_(0, batch.owner, batch.weight).numpy(), 1.0)
    starts = np.cumsum([0] + [len(item.distinct_frames[0]) for item in items[:-1]])
    assert batch.first_sequences().tolist() == starts.tolist()

    rng = np.random.default_rng(3)
    random = collate(items, frames="random", rng=rng)
    assert random.owner.tolist() == list(range(len(items)))
    features = random.rows[random.row_of].numpy()
    for k, item in enumerate(items):
        matches = [f for f in range(item.n_frames) if np.array_equal(features[k, : item.n_atoms], item.frames[f])]
        assert matches, item.label  # the atoms of one drawn frame
        assert len(random.rows[random.row_structure == k]) <= item.n_atoms  # only that frame's rows


def test_frames_that_repeat_another_are_predicted_once_with_their_weight(encoded):
    """A frame that gives every atom the same row as an earlier one is the same input: the
    batch holds it once, carrying both frames' weights, and the prediction is the average over
    every frame.  Checked on real crystals with every frame doubled (the halves' weights
    differing), against the same crystals as encoded."""
    from dataclasses import replace

    _, _, items = encoded
    items = items[:10]
    doubled = []
    for item in items:
        share = np.linspace(0.2, 0.7, item.n_frames)  # the first copy's share of each frame's weight
        doubled.append(
            replace(
                item,
                row_index=np.concatenate([item.row_index, item.row_index]),
                weights=np.concatenate([item.weights * share, item.weights * (1 - share)]),
            )
        )
    for item, twice in zip(items, doubled):
        distinct, weights = twice.distinct_frames
        assert distinct.tolist() == item.distinct_frames[0].tolist() and np.allclose(weights, item.distinct_frames[1])
    once, merged = collate(items), collate(doubled)
    assert torch.equal(merged.row_of, once.row_of) and torch.allclose(merged.weight, once.weight)
    torch.manual_seed(0)
    model = CrystalFourierTransformer(CFTConfig(radius=3.0, n_slots=items[0].rows.shape[1], d_model=32, hidden=32))
    assert np.allclose(predict_normalized(model, doubled, "cpu"), predict_normalized(model, items, "cpu"), atol=1e-6)
    # training draws one of all the frames per structure, with their own weights, as before
    drawn = collate(doubled, frames="random", rng=np.random.default_rng(0))
    assert drawn.owner.tolist() == list(range(len(items))) and torch.equal(drawn.weight, torch.ones(len(items)))


def test_biased_transformer_equals_pytorch_transformer_with_the_same_weights():
    torch.manual_seed(0)
    b, n, width, heads = 6, 9, 32, 4
    ours = BiasedTransformer(width, heads, 64, 0.0, 2).eval()
    reference = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(width, heads, 64, 0.0, batch_first=True, norm_first=True),
        2,
        enable_nested_tensor=False,
    )  # in training mode (dropout 0): its eval fast path returns NaN with a float mask (torch 2.13)
    reference.load_state_dict(ours.state_dict())  # same parameter names: older checkpoints load
    x, bias = torch.randn(b, n, width), torch.randn(b, heads, n, n)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[0, 5:], mask[3, 2:] = False, False
    padding = torch.zeros(b, n).masked_fill(~mask, float("-inf"))
    with torch.no_grad():
        expected = reference(x, mask=bias.reshape(b * heads, n, n), src_key_padding_mask=padding)
        got = ours(x, bias + padding[:, None, None, :])
    assert torch.allclose(got[mask], expected[mask], atol=1e-6)


def test_size_batches_cover_every_item_once_in_batches_of_alike_sizes():
    sizes = np.random.default_rng(0).integers(1, 200, size=500)
    batches = size_batches(sizes, batch_size=32)
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(len(sizes)))
    for batch in batches:
        assert 1 <= len(batch) <= 32
        assert sizes[batch].max() <= max(1.5 * sizes[batch].min(), sizes[batch].min() + 8)
    assert size_batches([], 32) == []


def test_shuffled_batches_use_every_item_once_and_pool_alike_sizes():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 200, size=1000)
    order = rng.permutation(len(sizes))
    plain = shuffled_batches(order, None, 32, rng)
    assert np.array_equal(np.concatenate(plain), order)  # no sizes: the order as it is, cut
    pooled = shuffled_batches(order, sizes, 32, np.random.default_rng(1), pool=4)
    assert np.array_equal(np.sort(np.concatenate(pooled)), np.arange(len(sizes)))
    assert sorted(len(batch) for batch in pooled) == sorted(len(batch) for batch in plain)
    padding = lambda batches: sum(len(b) * sizes[b].max() - sizes[b].sum() for b in batches)  # noqa: E731
    assert padding(pooled) < padding(plain) / 2
    for start in range(0, len(order), 4 * 32):  # each pool of 4 batches holds the same items as before
        pool = order[start : start + 4 * 32]
        members = [b for b in pooled if np.isin(b, pool).all()]
        assert sum(len(b) for b in members) == len(pool)


# the CFT's optional terms, each read from the padded batch in its own way
TERMS = [
    {"environment": False},
    {"environment": True},
    {"environment": True, "composition": True},
    {"environment": True, "interactions": True},
]
TERM_IDS = ["plain", "environment", "environment+composition", "environment+interactions"]


@pytest.mark.parametrize("terms", TERMS, ids=TERM_IDS)
def test_prediction_does_not_depend_on_the_order_or_batching_of_structures(encoded, terms):
    """Padding (atoms, frames, rows) reaches no real atom's output."""
    featurizer, _, items = encoded
    torch.manual_seed(0)
    config = CFTConfig(radius=3, n_slots=featurizer.n_slots, d_model=32, hidden=64, **terms)
    model = CrystalFourierTransformer(config)
    randomize_pair_terms(model)
    reference = np.array([predict_normalized(model, [item], "cpu")[0] for item in items])  # one at a time
    permutation = np.random.default_rng(1).permutation(len(items))
    for batch_size in (4, 32):
        shuffled = predict_normalized(model, [items[i] for i in permutation], "cpu", batch_size=batch_size)
        assert np.allclose(shuffled, reference[permutation], rtol=1e-5, atol=1e-6)


def test_a_training_batch_of_unlike_sizes_comes_in_parts_each_padded_to_its_own_largest(encoded):
    _, _, items = encoded
    sizes = np.array([item.n_atoms for item in items])
    assert sizes.max() > 1.5 * sizes.min() + 8  # the fixture mixes small and large crystals
    batch = cft_collate(items, True, np.random.default_rng(0))
    assert isinstance(batch, SizeGroups) and len(batch.parts) > 1
    assert sorted(batch.owner.tolist()) == list(range(len(items)))  # one frame of every structure
    start = 0
    for part in batch.parts:
        members = batch.owner[start : start + len(part.owner)].numpy()
        assert part.mask.shape[1] == sizes[members].max()  # padded to its own largest, not the batch's
        assert part.mask.sum(1).tolist() == sizes[members].tolist()
        start += len(part.owner)
    alike = [item for item in items if item.n_atoms == sizes.min()]
    assert isinstance(cft_collate(alike, True, np.random.default_rng(0)), type(collate(alike)))  # nothing to cut


@pytest.mark.parametrize("terms", TERMS, ids=TERM_IDS)
def test_the_cft_predicts_size_groups_as_it_predicts_the_whole_batch(encoded, terms):
    """What :class:`SizeGroups` changes is padding only: the same sequences, the same outputs."""
    featurizer, _, items = encoded
    torch.manual_seed(0)
    config = CFTConfig(radius=3, n_slots=featurizer.n_slots, d_model=32, hidden=64, **terms)
    model = CrystalFourierTransformer(config).eval()
    randomize_pair_terms(model)
    whole, parts = collate(items, frames="all"), collate_by_size(items, frames="all")
    assert isinstance(parts, SizeGroups) and len(parts.parts) > 1
    with torch.no_grad():
        expected, predicted = model(whole), model(parts)
    # each structure's frames, in the order each batch lays them out
    by_structure = lambda owner, values: [values[owner == k] for k in range(len(items))]  # noqa: E731
    for mine, reference in zip(by_structure(parts.owner, predicted), by_structure(whole.owner, expected)):
        assert torch.allclose(mine, reference, rtol=1e-5, atol=1e-6)
    assert torch.equal(torch.sort(parts.weight).values, torch.sort(whole.weight).values)


def whole_standardized_cell(featurizer, cell) -> tuple[EncodedStructure, np.ndarray]:
    """The encoding of every atom of the standardized cell, each with its own features and
    pair profiles (what the CFT saw before it kept one atom per centring class), and the
    centring classes of those atoms."""
    framed = crystal_frames(cell, symprec=featurizer.symprec, invariance=featurizer.invariance)
    standard = framed.standardization
    features = np.stack([featurizer.features(standard.setting.hall_number, x) for x in framed.positions])
    n_frames, n_atoms, width = features.shape
    whole = EncodedStructure(
        label=cell.label,
        group=standard.setting.group,
        hall_number=standard.setting.hall_number,
        numbers=standard.cell.numbers,
        rows=features.reshape(-1, width),
        row_index=np.arange(n_frames * n_atoms, dtype=np.int32).reshape(n_frames, n_atoms),
        weights=framed.weights,
        lattice=lattice_features(standard.cell.lattice),
        radial=pair_radial(standard.cell.lattice, standard.cell.positions)[:, :, None],
        input_to_standardized=standard.input_to_standardized,
    )
    return whole, centring_classes(standard.primitive_atoms)


@pytest.mark.parametrize("terms", TERMS, ids=TERM_IDS)
def test_one_atom_per_centring_class_gives_the_outputs_of_the_whole_standardized_cell(encoded, terms):
    """Attention over the kept atoms, each pair biased by the log-sum-exp over the second
    atom's centring copies, is attention over the whole cell: every frame's prediction, and
    every atom's output (the copies' equal to their kept atom's)."""
    featurizer, cells, items = encoded
    torch.manual_seed(0)
    config = CFTConfig(radius=3, n_slots=featurizer.n_slots, d_model=32, hidden=64, **terms)
    model = CrystalFourierTransformer(config).eval()
    randomize_pair_terms(model)
    whole = [whole_standardized_cell(featurizer, cell) for cell in cells]
    centred = [k for k, item in enumerate(items) if item.n_copies > 1]
    assert {items[k].n_copies for k in centred} >= {2, 4}  # body- and face-centred among them
    # the whole cells' rows are one per atom and frame, so none of their frames repeats another;
    # the kept atoms' frames that do are predicted once (EncodedStructure.distinct_frames)
    starts = np.cumsum([0] + [cell.n_frames for cell, _ in whole[:-1]])
    distinct = [torch.from_numpy(item.distinct_frames[0]) for item in items]
    with torch.no_grad():
        expected = model(collate([cell for cell, _ in whole]))[torch.cat([s + d for s, d in zip(starts, distinct)])]
        assert torch.allclose(model(collate(items)), expected, rtol=1e-5, atol=1e-5)
        for k in centred:
            (cell, classes), item = whole[k], items[k]
            # each input atom's kept atom is the class of its standardized atom
            assert (classes[item.input_to_standardized] == cell.input_to_standardized[:, None]).any(1).all()
            kept = model.atom_states(collate([item]))  # (D, M, width)
            full = model.atom_states(collate([cell]))[distinct[k]][:, torch.from_numpy(classes)]  # (D, M, C, width)
            assert torch.allclose(full, kept[:, :, None].expand_as(full), rtol=1e-4, atol=1e-5), item.label
            assert np.array_equal(item.numbers, cell.numbers[classes[:, 0]])


def test_attention_dropout_drops_each_centring_copy_on_its_own_as_in_the_whole_cell():
    """With the same random draws, attention over the kept atoms (bias: the log-sum-exp over
    copies; dropout: each copy's share) equals attention over every copy as a key of its own,
    each with its own bias and dropped on its own."""
    torch.manual_seed(0)
    b, heads, n, width, c, p = 3, 2, 5, 4, 3, 0.3
    q, k, v = (torch.randn(b, heads, n, width, dtype=torch.float64) for _ in range(3))
    copies = torch.ones(b, c, dtype=torch.bool)
    copies[1, 1:] = False  # a primitive structure in the batch: one copy, plain dropout
    per_copy = torch.randn(b, heads, n, n, c, dtype=torch.float64).masked_fill(
        ~copies[:, None, None, None, :], float("-inf")
    )
    torch.manual_seed(1)
    got = attention_dropping_copies(q, k, v, per_copy.logsumexp(-1), per_copy.softmax(-1), p)
    torch.manual_seed(1)
    kept = torch.empty(b, heads, n, n, c, dtype=torch.float64).bernoulli_(1 - p)  # the same draws
    logits = (q @ k.transpose(-1, -2) * width**-0.5)[..., None] + per_copy  # (b, heads, n, n keys, c copies)
    weights = logits.flatten(-2).softmax(-1).view_as(logits)  # over every copy of every key
    expected = ((weights * kept).sum(-1) / (1 - p)) @ v  # a copy's value is its class's
    assert torch.allclose(got, expected, atol=1e-12)
    assert not torch.allclose(got, (weights.sum(-1) * kept[..., 0] / (1 - p)) @ v)  # not classes dropped whole


@pytest.mark.parametrize("terms", TERMS, ids=TERM_IDS)
def test_the_cft_in_training_drops_each_centring_copy_on_its_own(encoded, terms):
    """Wired into the model: with attention dropout alone, the kept atoms of a face-centred
    crystal take more outcomes than the 2^N of dropping each of its N classes whole."""
    featurizer, _, items = encoded
    item = min((item for item in items if item.n_copies == 4), key=lambda item: item.n_atoms)
    torch.manual_seed(0)
    config = CFTConfig(
        radius=3, n_slots=featurizer.n_slots, d_model=16, hidden=32, heads=1, layers=1, dropout=0.5, **terms
    )
    model = CrystalFourierTransformer(config).train()
    randomize_pair_terms(model)  # copies of unlike profiles: unequal shares of the weight
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # attention's own dropout is left
    batch = collate([item], frames="random", rng=np.random.default_rng(0))
    with torch.no_grad():
        outcomes = {tuple(model.atom_states(batch)[0, 0].tolist()) for _ in range(300)}
    assert len(outcomes) > 2**item.n_atoms, (item.label, item.n_atoms, len(outcomes))


def test_identity_routing_encodes_plain_p1_fourier_features(small_store, encoded):
    """The ablation keeps the group's frames but not its invariant functions: the atoms of an
    orbit no longer share a row."""
    featurizer, cells, items = encoded
    plain = StructureFeaturizer(BasisStore.open(small_store), radius=3, routing="identity")
    for cell, item in list(zip(cells, items))[:6]:
        ablated = plain.encode(cell)
        assert (ablated.hall_number, ablated.n_frames) == (item.hall_number, item.n_frames)
        framed = crystal_frames(cell, symprec=plain.symprec, invariance=plain.invariance)
        assert np.array_equal(
            ablated.frames, np.stack([plain.features(1, positions) for positions in framed.positions])
        )
        assert len(ablated.rows) >= len(item.rows)
    with pytest.raises(ValueError, match="routing must be one of"):
        StructureFeaturizer(BasisStore.open(small_store), radius=3, routing="none")


def test_cft_without_lattice_branch_or_radial_bias_has_neither(encoded):
    featurizer, _, items = encoded
    # the environment term reads the pair profiles too: without it and the bias, none reaches the output
    ablated = {"lattice_branch": False, "radial_bias": False, "environment": False}
    model = CrystalFourierTransformer(CFTConfig(radius=3, n_slots=featurizer.n_slots, d_model=16, hidden=32, **ablated))
    names = [name for name, _ in model.named_parameters()]
    assert not any("lattice_branch" in name or name.startswith("radial_bias") for name in names)
    batch = collate(items[:4], frames="all")
    moved = collate(items[:4], frames="all")
    moved.lattice, moved.radial = moved.lattice + 1.0, moved.radial + 1.0  # neither reaches the output any more
    with torch.no_grad():
        assert torch.equal(model.eval()(batch), model(moved))


def test_cft_without_positional_encoding_sees_no_positions_and_predicts_every_frame_alike(encoded):
    featurizer, _, items = encoded
    config = CFTConfig(radius=3, n_slots=featurizer.n_slots, d_model=16, hidden=32, positional_encoding=False)
    model = CrystalFourierTransformer(config).eval()
    assert model.encoder is None and not any(name.startswith("encoder.") for name, _ in model.named_parameters())
    batch, moved = collate(items[:6], frames="all"), collate(items[:6], frames="all")
    moved.rows = torch.randn_like(moved.rows)  # positions no longer reach the output
    with torch.no_grad():
        predicted = model(batch)
        assert torch.equal(predicted, model(moved))
    for k in range(6):
        frames = predicted[batch.owner == k]
        assert torch.allclose(frames, frames[:1].expand_as(frames), atol=1e-6)
    assert any(item.n_frames > 1 for item in items[:6])


def position_dropout_model(featurizer) -> CrystalFourierTransformer:
    torch.manual_seed(0)
    config = CFTConfig(radius=3, n_slots=featurizer.n_slots, d_model=16, hidden=32, dropout=0.0, position_dropout=0.5)
    return CrystalFourierTransformer(config)


def test_position_dropout_predicts_groups_it_was_not_trained_on_without_positions(encoded):
    """In prediction, a structure whose space group is not among the recorded training groups
    gets no positional encoding (random feature rows leave its prediction alone, and every
    frame gives the same one), while the others keep theirs; before any record, every group
    keeps its positions."""
    featurizer, _, items = encoded
    model = position_dropout_model(featurizer).eval()
    batch, moved = collate(items[:8], frames="all"), collate(items[:8], frames="all")
    moved.rows = torch.randn_like(moved.rows)
    groups = [item.group for item in items[:8]]
    trained = groups[:4]
    unseen = torch.tensor([group not in trained for group in groups])
    assert 0 < unseen.sum() < len(groups)
    with torch.no_grad():
        assert not torch.isclose(model(batch), model(moved)).any()  # every group is trusted until recorded
        model.record_training_groups(trained)
        assert model.trained_groups.sum() == len(set(trained)) and model.trained_groups[trained].all()
        predicted, changed = model(batch), model(moved)
    same = torch.isclose(predicted, changed, rtol=0, atol=1e-6)
    assert torch.equal(same, unseen[batch.owner])
    for k in torch.nonzero(unseen).flatten().tolist():
        frames = predicted[batch.owner == k]
        assert torch.allclose(frames, frames[:1].expand_as(frames), atol=1e-6)


def test_position_dropout_in_training_leaves_out_whole_structures_at_its_rate(encoded):
    """In training, each structure's positions are left out with the configured probability,
    all of its atoms and frames together: with the same draws, the structures drawn out are
    those whose outputs random feature rows do not change."""
    featurizer, _, items = encoded
    model = position_dropout_model(featurizer).train()
    model.record_training_groups([])  # training ignores the record
    batch, moved = collate(items[:8], frames="all"), collate(items[:8], frames="all")
    moved.rows = torch.randn_like(moved.rows)
    outcomes = set()
    for seed in range(6):
        torch.manual_seed(seed)
        used = model.positions_used(batch)
        torch.manual_seed(seed)
        predicted = model(batch)
        torch.manual_seed(seed)
        changed = model(moved)
        same = torch.isclose(predicted, changed, rtol=0, atol=1e-6)
        assert torch.equal(same, ~used[batch.owner])
        outcomes.add(tuple(used.tolist()))
    assert len(outcomes) > 1  # drawn anew at each step
    torch.manual_seed(0)
    rate = torch.stack([model.positions_used(batch) for _ in range(2000)]).float().mean()
    assert abs(rate - 0.5) < 0.02  # 16,000 draws: 0.02 is more than five standard deviations


def test_atom_environment_is_the_species_resolved_sum_over_neighbours(encoded):
    """Against a direct sum over each structure's real atoms (float64): for atom i, the sum
    over the atoms j of the standardized cell (every centring copy) of R_ij times j's species
    vector, in a padded batch of alike and unalike sizes."""
    _, _, items = encoded
    torch.manual_seed(1)
    environment = AtomEnvironment(len(RADIAL_CENTRES), width=8, species=3).double()
    elements = nn.Embedding(119, 8).double()
    batch = collate(items, frames="all")
    first = batch.first_sequences()
    atoms, numbers = batch.mask[first], batch.numbers[first]
    with torch.no_grad():
        got = environment(batch.radial.double().sum(3), elements(numbers), atoms)
        for k, item in enumerate(items):
            species = environment.species(elements(torch.from_numpy(np.asarray(item.numbers, dtype=np.int64))))
            radial = torch.from_numpy(item.radial).double()  # (M, M, C, K)
            direct = torch.stack(
                [
                    torch.stack(
                        [
                            radial[i, j, c, :, None] * species[j]
                            for j in range(item.n_atoms)
                            for c in range(item.n_copies)
                        ]
                    ).sum(0)
                    for i in range(item.n_atoms)
                ]
            )  # (M, K, species)
            expected = environment.out(direct.flatten(1))
            assert torch.allclose(got[k, : item.n_atoms], expected, atol=1e-10), k
    assert max(item.n_atoms for item in items) > min(item.n_atoms for item in items)  # padding was exercised


def test_composition_statistics_are_those_of_each_structures_atoms(encoded):
    """Against numpy over each structure's real atoms, in a batch padded to its largest; a
    supercell (every atom twice) has the same statistics."""
    _, _, items = encoded
    table = element_property_table()
    batch = collate(items, frames="all")
    first = batch.first_sequences()
    statistics = CompositionStatistics()
    got = statistics(torch.from_numpy(table), batch.numbers[first], batch.mask[first]).numpy()
    for k, item in enumerate(items):
        values = table[item.numbers]
        mean = values.mean(0)
        expected = np.concatenate([mean, values.min(0), values.max(0), np.abs(values - mean).mean(0)])
        assert np.allclose(got[k], expected, atol=1e-6), k
        doubled = torch.from_numpy(np.tile(item.numbers, 2)[None])
        again = statistics(torch.from_numpy(table), doubled, torch.ones_like(doubled, dtype=torch.bool))
        assert np.allclose(again[0].numpy(), expected, atol=1e-6), k
    assert got.shape == (len(items), CompositionStatistics.STATISTICS * table.shape[1])


@pytest.mark.slow  # a fresh interpreter
def test_encoding_structures_does_not_load_torch(small_store):
    """Encoding worker processes start in a third of the time without it."""
    script = (
        "import sys\n"
        "from pymatgen.core import Lattice, Structure\n"
        "from basisdb import BasisStore\n"
        "from basisdb.model.data import StructureFeaturizer\n"
        f"featurizer = StructureFeaturizer(BasisStore.open({str(small_store)!r}), radius=3)\n"
        "item = featurizer.encode(Structure(Lattice.cubic(4.2), ['Cs', 'Cl'], [[0, 0, 0], [0.5, 0.5, 0.5]]))\n"
        "assert item.group == 221, item.group\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_no_subnormal_floats_reach_the_models(encoded):
    """Gaussian tails between 1e-45 and 1.2e-38 are float32 subnormals, which slowed every
    matrix product of the CGCNN 6x on the CPU; both models' radial inputs cut them to zero."""
    from basisdb.model.baselines import gaussian_expansion

    tiny = np.finfo(np.float32).tiny
    _, _, items = encoded
    radial = np.concatenate([item.radial.ravel() for item in items])
    assert not ((radial != 0) & (np.abs(radial) < tiny)).any() and (radial > 0).any()
    distances = torch.linspace(0.0, 8.0, 4001)  # every tail, through the subnormal band
    centres = torch.arange(0.0, 8.1, 0.2)
    gaussians = gaussian_expansion(distances, centres, 0.2)
    assert not ((gaussians != 0) & (gaussians.abs() < tiny)).any()
    reference = torch.exp(-(((distances.double()[:, None] - centres.double()) / 0.2) ** 2))
    assert ((reference != 0) & (reference < tiny)).any()  # the band is really crossed
    # only the tails change: zeros only where float64 puts the tail near or under the cut
    # (1e-30, with a factor 2 of margin for float32's exp), never above, and elsewhere the
    # Gaussian itself. The checks bound the masking, not torch's float32 exp, whose accuracy
    # depends on the CPU: here it is within 1e-7 of float64, but CI's machine gave deviations
    # of 1e-4 (and differed between two identical float32 calls)
    kept = gaussians != 0
    assert (reference[~kept] < 2e-30).all() and kept[reference > 2e-30].all()
    seen = reference > 1e-6  # what the models see; the tails are checked above
    relative = (gaussians.double() - reference).abs()[seen] / reference[seen]
    assert relative.max() < 1e-3, f"worst relative deviation {relative.max():.3g}"
