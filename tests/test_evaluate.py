"""Cross-validated evaluation against the baselines, on the real built-in datasets."""

import itertools
import json
import os
import subprocess
import time
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from basisdb import BasisStore, Cell
from basisdb.model.baselines import CGCNN, crystal_graph, graph_collate
from basisdb.model.cli import parse_groups
from basisdb.model.data import RADIAL_CENTRES, StructureFeaturizer, collate, pair_radial
from basisdb.model.methods import METHODS, NEURAL, Method, NeuralSettings, make_method
from basisdb.model.models import CFTConfig, CrystalFourierTransformer
from basisdb.model.prepared import prepare
from basisdb.model.report import plots, summarize
from basisdb.model.results import (
    FoldResult,
    ResultError,
    RunConfig,
    Scores,
    Transfer,
    read_config,
    read_run,
    same_folds,
)
from basisdb.redescriptions import rotated

from .helpers import REAL, real, run_basisdb


def evaluated(options: str, store, dataset_dir, out):
    """``basisdb evaluate OPTIONS`` on ``store`` and the fetched datasets, run for real: the
    finished process and the run it wrote (:func:`read_run`)."""
    paths = ("--store", str(store), "--data-dir", str(dataset_dir), "--out", str(out))
    result = run_basisdb("evaluate", *options.split(), *paths)
    assert result.returncode == 0, result.stderr
    return result, read_run(out)


def test_parse_groups():
    assert parse_groups("2,14,15") == [2, 14, 15]
    assert parse_groups("143-194") == list(range(143, 195))
    assert parse_groups("cubic") == list(range(195, 231))
    assert parse_groups("Triclinic, 15") == [1, 2, 15]
    for bad, message in [("0-3", "1-230"), ("231", "1-230"), ("cubik", "crystal system"), ("2;14", "cannot read")]:
        with pytest.raises(ValueError, match=message):
            parse_groups(bad)


def test_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    truth, predicted = rng.normal(size=50), rng.normal(size=50)
    got = Scores.of(truth, predicted)
    assert got.mae == pytest.approx(mean_absolute_error(truth, predicted))
    assert got.rmse == pytest.approx(np.sqrt(mean_squared_error(truth, predicted)))
    assert got.r2 == pytest.approx(r2_score(truth, predicted))


def brute_force_images(structure, cutoff, reach=3):
    """(centre, neighbour, distance) over explicit lattice translations."""
    frac, lattice = structure.frac_coords, structure.lattice.matrix
    out = []
    for shift in itertools.product(range(-reach, reach + 1), repeat=3):
        delta = (frac[None, :, :] + np.array(shift) - frac[:, None, :]) @ lattice
        d = np.linalg.norm(delta, axis=-1)
        for i, j in zip(*np.nonzero((d < cutoff) & (d > 1e-8))):
            out.append((i, j, d[i, j]))
    return out


@pytest.mark.parametrize("name", ["Li2O", "CsCl", "LiFePO4"])
def test_pair_radial_counts_every_image(name):
    structure = real(name)
    cutoff = RADIAL_CENTRES[-1] + 0.5
    expected = np.zeros((len(structure), len(structure), len(RADIAL_CENTRES)))
    for i, j, d in brute_force_images(structure, cutoff):
        expected[i, j] += np.exp(-(((d - RADIAL_CENTRES) / 0.5) ** 2))
    got = pair_radial(structure.lattice.matrix, structure.frac_coords)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.allclose(got, got.transpose(1, 0, 2), atol=1e-5)


@pytest.mark.parametrize("name", ["Li2O", "LiFePO4"])
def test_crystal_graph_keeps_the_twelve_nearest(name):
    structure = real(name)
    graph = crystal_graph(structure, cutoff=8.0, max_neighbors=12)
    found = brute_force_images(structure, 8.0)
    for centre in range(len(structure)):
        nearest = np.sort([d for i, _, d in found if i == centre])[:12]
        assert np.allclose(np.sort(graph.distances[graph.edges[1] == centre]), nearest, atol=1e-5)
    assert set(graph.numbers) == {site.specie.Z for site in structure}


def test_cgcnn_is_invariant_to_rotation_and_atom_order():
    torch.manual_seed(0)
    model = CGCNN().eval()
    structure = real("LiFePO4")
    shuffled = Structure.from_sites([structure[i] for i in np.random.default_rng(1).permutation(len(structure))])
    turned, _ = rotated(Cell.from_pymatgen(structure), np.random.default_rng(0))
    graphs = [
        crystal_graph(s)
        for s in (structure, shuffled, Structure(turned.lattice, turned.numbers.tolist(), turned.positions))
    ]
    with torch.no_grad():
        out = model(graph_collate(graphs)).numpy()
    assert np.allclose(out, out[0], rtol=1e-4, atol=1e-6)


def test_cft_inference_path_matches_training_path(small_store):
    """Without dropout, eval under no_grad gives what training mode gives (PyTorch's
    attention fast path once returned NaN here with the radial bias)."""
    torch.manual_seed(0)
    featurizer = StructureFeaturizer(BasisStore.open(small_store), radius=3)
    model = CrystalFourierTransformer(
        CFTConfig(radius=3, n_slots=featurizer.n_slots, d_model=32, hidden=64, dropout=0.0)
    )
    torch.nn.init.normal_(model.radial_bias.weight)
    batch = collate([featurizer.encode(real(name)) for name in REAL], frames="all")
    trained_path = model.train()(batch)
    with torch.no_grad():
        inference_path = model.eval()(batch)
    assert torch.isfinite(inference_path).all()
    assert torch.allclose(trained_path, inference_path, rtol=1e-4, atol=1e-5)


def test_prepare_reports_structures_that_fail_and_aligns_the_rest(parsed_dataset, small_store):
    data = parsed_dataset("dielectric_constant", "band_gap").subset(np.arange(6))
    disordered = Structure(Lattice.cubic(4.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])
    structures = list(data.structures)
    structures[2] = disordered
    data = type(data)(
        data.dataset, data.target, data.unit, data.ids, structures, data.values, data.formulas, [], data.reference
    )
    prepared, rejected = prepare(data, StructureFeaturizer(BasisStore.open(small_store), radius=3), report=None)
    assert [material for material, _ in rejected] == [data.ids[2]] and "disordered" in rejected[0][1]
    keep = [0, 1, 3, 4, 5]
    assert prepared.ids == [data.ids[i] for i in keep]
    assert np.array_equal(prepared.values, data.values[keep])
    assert [item.label for item in prepared.items] == prepared.ids
    assert prepared.composition.shape == (5, 132) and len(prepared.graphs) == 5
    assert prepared.structure.shape == (5, 5) and np.isfinite(prepared.structure).all()
    assert np.array_equal(prepared.structure[:, 3], [item.group for item in prepared.items])
    primitive = [len(structure.get_primitive_structure(tolerance=1e-2)) for structure in data.subset(keep).structures]
    assert np.array_equal(prepared.structure[:, 4], primitive)  # pymatgen's primitive cell, as an oracle


def test_each_fold_records_the_groups_its_cft_trains_on(parsed_dataset, small_store):
    """With ``--position-dropout``, a fold's CFT records the space groups of the structures it
    fits (none of those it only predicts), so that it predicts the held-out and
    test-only groups without positions."""
    from basisdb.model.training import TrainConfig

    data = parsed_dataset("elastic_tensor", "log10_K_VRH").subset(np.arange(40))
    prepared, _ = prepare(data, StructureFeaturizer(BasisStore.open(small_store), radius=3), report=None)
    cubic = prepared.groups >= 195
    train, held_out = np.flatnonzero(~cubic), np.flatnonzero(cubic)
    assert len(held_out) > 0
    config = CFTConfig(radius=3, n_slots=prepared.items[0].rows.shape[1], d_model=16, hidden=32, position_dropout=0.5)
    settings = NeuralSettings(train=TrainConfig(epochs=1, batch_size=8), cft=config, pretrained=None, device="cpu")
    method = make_method("cft", prepared, settings).fit(train, 0)
    assert np.isfinite(method.predict(held_out)).all()
    recorded = set(torch.nonzero(method.model.trained_groups).flatten().tolist())
    assert recorded <= set(prepared.groups[train].tolist()) and not recorded & set(range(195, 231))
    validated = len(train) - round(0.9 * len(train))  # the 10% of the fold that validates
    counts = np.bincount(prepared.groups[train], minlength=231)
    assert set(np.flatnonzero(counts > validated).tolist()) <= recorded  # too many to all validate


def test_evaluate_cli_with_held_out_groups(dataset_dir, small_store, pretrained_encoder, tmp_path):
    out = tmp_path / "evaluation"
    options = (
        "--dataset elastic_tensor --target log10_K_VRH --folds 2 --seed 3 --limit 60 --holdout-groups cubic"
        f" --radius 3 --epochs 2 --minutes 0.5 --plots --pretrained {pretrained_encoder}"
    )
    result, run = evaluated(options, small_store, dataset_dir, out)
    assert run.methods == ("mean", "composition-rf", "magpie-structure-rf", "cgcnn", "cft", "cft-pretrained")
    assert len(run.ids) == 60 - len(run.rejected)
    unseen = np.isin(run.groups, range(195, 231))
    assert unseen.any() and np.array_equal(run.held_out, unseen) and np.array_equal(run.fold == -1, unseen)
    assert run.config.holdout == "cubic" and run.config.protocol == "compute-matched"
    assert run.config.cft.d_model == 32  # the pretrained encoder's architecture
    [seed] = run.seeds
    for name, method in seed.methods.items():
        assert len(method.folds) == 2 and sum(f.n_test for f in method.folds) == (~unseen).sum()
        assert np.isnan(method.out_of_fold[unseen]).all() and np.isfinite(method.out_of_fold[~unseen]).all()
        assert method.unseen.shape == (2, unseen.sum())
        for fold, predicted_unseen in zip(method.folds, method.unseen):
            tested = run.fold == fold.fold
            assert fold.test.mae == pytest.approx(np.mean(np.abs(method.out_of_fold[tested] - run.truth[tested])))
            assert fold.unseen.mae == pytest.approx(np.mean(np.abs(predicted_unseen - run.truth[unseen])))
            assert np.isfinite([fold.test.rmse, fold.test.r2, fold.unseen.rmse]).all(), name
        summary = summarize(run)[name]
        maes = method.fold_maes()
        assert (summary.test_mae.mean, summary.test_mae.sd) == pytest.approx((maes.mean(), maes.std(ddof=1)))
        assert summary.seeds_mae is None  # one training seed
    for fold in seed.methods["cft"].folds:  # the structures each epoch trained on, 10% of the fold validating
        trained_on = fold.n_train - max(1, round(0.1 * fold.n_train))
        assert fold.train_structures_per_second * fold.train_seconds == pytest.approx(
            fold.epochs * trained_on, rel=1e-9
        )
    redrawn = tmp_path / "redrawn"  # from the stored run alone
    redrawn.mkdir()
    assert [p.name for p in plots(run, redrawn)] == ["parity_log10_K_VRH.png", "seen_vs_unseen_log10_K_VRH.png"]
    for picture in ("parity_log10_K_VRH.png", "seen_vs_unseen_log10_K_VRH.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (redrawn / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "results.md").read_text()
    assert "| cft-pretrained |" in table and "unseen-group MAE" in table and "sample sd" in table
    assert "fold 2/2  cft" in result.stderr


def test_evaluate_cli_ablations_and_training_seed(dataset_dir, small_store, tmp_path):
    """The converged protocol (no --minutes) with every ablation switched on, reseeded on the
    same folds: the switches reach the model and the featurizer, and are recorded.  Without
    --plots, no figure is drawn."""
    out = tmp_path / "ablated"
    options = (
        "--dataset elastic_tensor --target log10_K_VRH --folds 2 --seed 3 --training-seeds 7 --limit 30 --methods cft"
        " --radius 3 --epochs 2 --d-model 16 --hidden 32 --routing identity --no-lattice-branch --no-radial-bias"
        " --no-environment"
    )
    result, run = evaluated(options, small_store, dataset_dir, out)
    config = run.config
    assert (config.protocol, config.seed, config.training_seeds) == ("converged", 3, (7,))
    assert [seed.training_seed for seed in run.seeds] == [7] and config.train.seed == 7
    assert config.routing == "identity" and config.train.max_minutes is None
    assert not config.cft.lattice_branch and not config.cft.radial_bias and not config.cft.environment
    for phrase in ("identity routing", "no lattice branch", "no radial bias", "no environment"):
        assert phrase in config.label()
    folds = run.seeds[0].methods["cft"].folds
    assert [fold.epochs for fold in folds] == [2, 2]
    assert all(0 < fold.best_val_mae < 10 and fold.best_epoch in (1, 2) for fold in folds)
    assert sorted(path.name for path in out.iterdir()) == ["config.toml", "results.json.gz", "results.md"]


def test_a_transfer_source_leaves_out_the_evaluated_formulas_and_the_held_out_groups(
    dataset_dir, parsed_dataset, small_store
):
    """A transfer from another property (band gap) to the moduli sees no compound of the moduli's
    dataset, in any cell, and no structure of a held-out group."""
    from basisdb.model.transfer import transfer_source

    evaluated = parsed_dataset("elastic_tensor", "log10_K_VRH")
    drawn = parsed_dataset("dielectric_constant", "band_gap").sample(300, 4)
    shared = [formula in set(evaluated.formulas) for formula in drawn.formulas]
    assert 0 < sum(shared) < 300
    cubic = list(range(195, 231))
    featurizer = StructureFeaturizer(BasisStore.open(small_store), radius=3)
    source, record = transfer_source(
        "dielectric_constant",  # parsed in 0.4 s, where formation energy takes 7 s
        "band_gap",
        evaluated,
        cubic,
        featurizer,
        report=None,
        limit=300,
        seed=4,
        directory=dataset_dir,
    )
    assert record["left_out_same_formula"] == sum(shared)
    assert record["left_out_held_out_groups"] > 0 and not np.isin(source.groups, cubic).any()
    assert record["n_structures"] == len(source.values) == 300 - sum(shared) - record["left_out_held_out_groups"]
    row_of = {material: i for i, material in enumerate(drawn.ids)}
    rows = [row_of[material] for material in source.ids]
    assert not any(shared[i] for i in rows)
    assert np.array_equal(source.values, drawn.values[rows])  # the other property's values, aligned
    assert [item.label for item in source.items] == source.ids and len(source.graphs) == len(source.ids)


@pytest.mark.parametrize("name", ["cgcnn", "cft"])
def test_a_transferred_fit_starts_from_the_source_weights(parsed_dataset, small_store, name):
    """The source fit's weights are where each fold's fit starts: after an epoch the fold's
    model is far nearer to them than to the fresh initialization it would have had."""
    from basisdb.model.methods import fit_network, new_network, start_from
    from basisdb.model.training import TrainConfig
    from basisdb.model.transfer import source_weights

    featurizer = StructureFeaturizer(BasisStore.open(small_store), radius=3)
    moduli = parsed_dataset("elastic_tensor", "log10_K_VRH").sample(40, 1)
    formation = parsed_dataset("flla_2015", "formation_energy_per_atom").sample(60, 1)
    target, _ = prepare(moduli, featurizer, None)
    source, _ = prepare(formation, featurizer, None)
    config = CFTConfig(radius=3, n_slots=target.items[0].rows.shape[1], d_model=16, hidden=32)
    settings = NeuralSettings(train=TrainConfig(epochs=2, batch_size=8), cft=config, pretrained=None, device="cpu")
    start, info = source_weights(name, source, settings, seed=5)
    assert info["epochs"] == 2 and np.isfinite(info["best_val_mae"])

    def flat(state):
        return torch.cat([value.flatten().float() for value in state.values()])

    torch.manual_seed(9)
    fresh = flat(new_network(name, settings).state_dict())
    assert not torch.equal(fresh, flat(start))
    one_epoch = NeuralSettings(train=TrainConfig(epochs=1, batch_size=8), cft=config, pretrained=None, device="cpu")
    method = make_method(name, target, one_epoch, start).fit(np.arange(30), 9)
    predictions = method.predict(np.arange(30, 40))
    assert predictions.shape == (10,) and np.isfinite(predictions).all() and method.info["epochs"] == 1
    fitted = flat(method.model.state_dict())
    assert torch.linalg.norm(fitted - flat(start)) < 0.1 * torch.linalg.norm(fitted - fresh)
    # the method's fit is this one: seeded before the model is built, then started from the source
    torch.manual_seed(9)
    model = new_network(name, settings)
    model.load_state_dict(start)
    field, collate_fn = NEURAL[name]
    fit_network(model, getattr(target, field), target.values, np.arange(30), one_epoch, 9, collate_fn)
    assert torch.equal(flat(model.state_dict()), fitted)

    # with a fresh head, the body starts from the source and the head as a fresh model's
    torch.manual_seed(9)
    model = new_network(name, settings)
    initial = {key: value.clone() for key, value in model.state_dict().items()}
    start_from(model, start, fresh_head=True)
    head = [key for key in initial if key.startswith("head.")]
    assert head and len(head) < len(initial)
    for key, value in model.state_dict().items():
        assert torch.equal(value, initial[key] if key in head else start[key]), key


@pytest.mark.parametrize("name", ["cgcnn", "cft"])
def test_a_source_fit_is_kept_per_configuration_and_a_damaged_one_refitted(parsed_dataset, small_store, tmp_path, name):
    """The second fit of one configuration reads the first's weights back, and they are what a
    fit would give again; another seed or source is another fit; a damaged file is refitted."""
    from basisdb.model.encoding_cache import EncodingCache
    from basisdb.model.source_fits import SourceFitCache
    from basisdb.model.training import TrainConfig
    from basisdb.model.transfer import source_fit_description, source_weights

    featurizer = StructureFeaturizer(BasisStore.open(small_store), radius=3)
    source, _ = prepare(parsed_dataset("flla_2015", "formation_energy_per_atom").sample(50, 2), featurizer)
    config = CFTConfig(radius=3, n_slots=source.items[0].rows.shape[1], d_model=16, hidden=32)
    settings = NeuralSettings(train=TrainConfig(epochs=2, batch_size=8), cft=config, pretrained=None, device="cpu")
    cache = SourceFitCache.at(tmp_path, EncodingCache.of(featurizer).configuration)

    fitted, record = source_weights(name, source, settings, 5, cache)
    assert not record["cached"] and len(list(tmp_path.glob("source-fit-*.h5"))) == 1
    read, again = source_weights(name, source, settings, 5, cache)
    assert again == {**record, "cached": True}
    assert read.keys() == fitted.keys() and all(torch.equal(read[k], fitted[k]) for k in fitted)
    # another seed, or one structure fewer in the source, is a fit of its own
    assert not source_weights(name, source, settings, 6, cache)[1]["cached"]
    assert not source_weights(name, source.subset(np.arange(1, 50)), settings, 5, cache)[1]["cached"]
    assert len(list(tmp_path.glob("source-fit-*.h5"))) == 3

    with h5py.File(cache.path(cache.configuration(source_fit_description(name, source, settings, 5))), "r+") as handle:
        first = handle["state"][next(iter(fitted))]
        first[...] = first[()] + 1  # damaged after its checksum was taken
    with pytest.warns(UserWarning, match="checksum does not match"):
        refitted, record_again = source_weights(name, source, settings, 5, cache)
    assert not record_again["cached"]
    assert all(torch.equal(refitted[k], fitted[k]) for k in fitted)  # what the file held, fitted again
    assert source_weights(name, source, settings, 5, cache)[1]["cached"]  # the refit replaced the file
    assert not source_weights(name, source, settings, 5, replace(cache, reuse=False))[1]["cached"]


def test_evaluate_cli_transfers_from_another_property(dataset_dir, small_store, tmp_path):
    """``--transfer-from`` fits each neural method on the other property first, records the
    source fit and what the source left out, and names the runs apart from fits from scratch.
    A second run reads the source fits back and predicts exactly as the first."""
    out = tmp_path / "transfer"
    options = (
        "--dataset elastic_tensor --target log10_G_VRH --folds 2 --seed 3 --limit 40 --methods mean,cgcnn,cft"
        " --radius 3 --epochs 2 --d-model 16 --hidden 32 --transfer-from dielectric_constant:band_gap"
        f" --encodings {tmp_path / 'cache'}"
    )
    result, run = evaluated(options, small_store, dataset_dir, out)
    again, second = evaluated(options, small_store, dataset_dir, tmp_path / "again")

    def methods(of):
        return of.seeds[0].methods

    def same_predictions(a, b, name):
        return np.array_equal(methods(a)[name].out_of_fold, methods(b)[name].out_of_fold, equal_nan=True)

    assert all(same_predictions(run, second, name) for name in run.methods)
    for name in ("cgcnn", "cft"):
        assert not methods(run)[name].source_fit["cached"] and f"{name}: source fit done in" in result.stderr
        assert methods(second)[name].source_fit["cached"]
        assert f"{name}: source fit read back from the cache, fitted in" in again.stderr
    assert run.config.transfer == Transfer("dielectric_constant:band_gap")
    transfer = run.transfer
    assert (transfer["dataset"], transfer["target"], transfer["unit"]) == (
        "dielectric_constant",
        "band_gap",
        "eV",
    )
    assert transfer["n_structures"] + transfer["left_out_same_formula"] + transfer["left_out_held_out_groups"] <= 40
    assert methods(run)["mean"].source_fit is None
    for name in ("cgcnn", "cft"):
        assert methods(run)[name].source_fit["epochs"] == 2
        assert f"{name}: fitting on the {transfer['n_structures']} structures of the source" in result.stderr
    # with a fresh head, fine-tuned at a learning rate of its own: the same source fits (trained
    # at --lr), read back, and folds that start and train elsewhere
    options += " --fresh-head --fine-tune-lr 0.01"
    _, tuned = evaluated(options, small_store, dataset_dir, tmp_path / "fine-tuned")
    assert tuned.config.transfer == Transfer("dielectric_constant:band_gap", True, 0.01)
    assert tuned.config.train.learning_rate == 1e-3
    for name in ("cgcnn", "cft"):
        assert methods(tuned)[name].source_fit["cached"] and not same_predictions(tuned, run, name)
    # each run is named apart from the other and from the fits from scratch
    labels = {of.config.label() for of in (run, tuned)} | {replace(run.config, transfer=None).label()}
    assert len(labels) == 3, labels


def test_runs_started_together_fit_their_source_once(dataset_dir, small_store, tmp_path):
    """Two runs that need one source fit at once: while a run holds the fit's lock the others
    wait; then one fits and saves the source, the other reads it back, and all predict alike."""
    from filelock import FileLock

    from .helpers import BASISDB_COMMAND, REPO_ROOT

    cache = tmp_path / "cache"
    options = (
        "--dataset elastic_tensor --target log10_G_VRH --folds 2 --seed 3 --limit 40 --methods cft"
        " --radius 3 --epochs 2 --d-model 16 --hidden 32 --transfer-from dielectric_constant:band_gap"
        f" --encodings {cache}"
    )
    _, first = evaluated(options, small_store, dataset_dir, tmp_path / "first")  # names the fit's file
    [fit] = cache.glob("source-fit-*.h5")
    fit.unlink()
    env = {**os.environ, "BASISDB_DATA_DIR": str(dataset_dir)}
    logs = [tmp_path / f"run-{i}.log" for i in range(2)]
    with FileLock(fit.with_suffix(".lock")):  # as a run fitting the source holds it
        runs = []
        for i, log in enumerate(logs):
            command = [BASISDB_COMMAND, "evaluate", *options.split(), "--store", str(small_store)]
            command += ["--out", str(tmp_path / f"run-{i}")]
            with log.open("w") as stderr:  # the process keeps its own copy of the file
                runs.append(subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr))
        deadline = time.monotonic() + 300
        while not all("waiting for another run fitting the same source" in log.read_text() for log in logs):
            assert all(run.poll() is None for run in runs), [log.read_text()[-2000:] for log in logs]
            assert time.monotonic() < deadline, "the runs did not wait for the lock"
            time.sleep(0.2)
        assert not fit.exists()
    assert [run.wait(timeout=300) for run in runs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    fitted = ["cft: source fit done in" in log.read_text() for log in logs]
    read = ["cft: source fit read back from the cache" in log.read_text() for log in logs]
    assert sorted(fitted) == [False, True] and read == [not f for f in fitted]
    for i in range(2):
        run = read_run(tmp_path / f"run-{i}")
        assert np.array_equal(run.seeds[0].methods["cft"].out_of_fold, first.seeds[0].methods["cft"].out_of_fold)


@pytest.mark.parametrize(
    "options, message",
    [
        ("--transfer-from flla_2015", "has no target ''"),
        ("--transfer-from matbench:formation_energy_per_atom", "no built-in dataset 'matbench'"),
        ("--transfer-from elastic_tensor:log10_K_VRH", "its test folds would be trained on"),
        ("--transfer-from flla_2015:formation_energy_per_atom --methods mean,composition-rf", "--methods names none"),
        ("--transfer-from flla_2015:formation_energy_per_atom --pretrained enc", "give one"),
        ("--refit-source", "which is not given"),
        ("--fresh-head", "which is not given"),
        ("--fine-tune-lr 1e-4", "which is not given"),
    ],
)
def test_evaluate_refuses_a_transfer_it_cannot_make(dataset_dir, options, message, capsys):
    from basisdb.model.evaluate import main

    command = f"--dataset elastic_tensor --target log10_K_VRH --data-dir {dataset_dir} " + options
    with pytest.raises(SystemExit) as exited:  # in this process: refused before any work
        main(command.split())
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_evaluate_needs_a_checkpoint_for_the_pretrained_method(dataset_dir):
    options = "--dataset elastic_tensor --target log10_K_VRH --methods cft-pretrained"
    result = run_basisdb("evaluate", *options.split(), env={**os.environ, "BASISDB_DATA_DIR": str(dataset_dir)})
    assert result.returncode == 2 and "--pretrained" in result.stderr


def test_a_run_reruns_exactly_from_its_config(dataset_dir, small_store, tmp_path):
    """``--config A/config.toml`` is the run of A again: the same configuration, written alike,
    and the same folds and out-of-fold predictions at every training seed."""
    options = (
        "--dataset elastic_tensor --target log10_K_VRH --folds 2 --seed 1 --training-seeds 0,2 --limit 40"
        " --methods mean,composition-rf --radius 3 --threads 1"
    )
    _, first = evaluated(options, small_store, dataset_dir, tmp_path / "A")
    assert sorted(path.name for path in (tmp_path / "A").iterdir()) == ["config.toml", "results.json.gz", "results.md"]
    place = ("--store", str(small_store), "--data-dir", str(dataset_dir), "--threads", "1")
    rerun = run_basisdb(
        "evaluate", "--config", str(tmp_path / "A" / "config.toml"), *place, "--out", str(tmp_path / "B")
    )
    assert rerun.returncode == 0, rerun.stderr
    second = read_run(tmp_path / "B")
    assert second.config == first.config == read_config(tmp_path / "A") == read_config(tmp_path / "B" / "config.toml")
    assert (tmp_path / "B" / "config.toml").read_text() == (tmp_path / "A" / "config.toml").read_text()
    assert first.config.training_seeds == (0, 2) and [seed.training_seed for seed in second.seeds] == [0, 2]
    assert same_folds(first, second)
    for a, b in zip(first.seeds, second.seeds):
        for name in ("mean", "composition-rf"):
            assert np.array_equal(a.methods[name].out_of_fold, b.methods[name].out_of_fold, equal_nan=True), name
            assert np.array_equal(a.methods[name].fold_maes(), b.methods[name].fold_maes()), name
    forests = [seed.methods["composition-rf"].out_of_fold for seed in first.seeds]
    assert not np.array_equal(forests[0], forests[1])  # another training seed, another forest
    assert "MAE sd over seeds" in (tmp_path / "B" / "results.md").read_text()


def test_every_method_fits_and_predicts_by_one_protocol(parsed_dataset, small_store, pretrained_encoder):
    """Each method is made on a prepared dataset, fitted on some rows and predicts others; a
    fit with the same seed predicts the same again, and predicting twice changes nothing (on
    one thread: a forest of several jobs adds its trees up in any order)."""
    from basisdb.model.checkpoint import read_pretrained_encoder
    from basisdb.model.training import TrainConfig

    store = BasisStore.open(small_store)
    data = parsed_dataset("elastic_tensor", "log10_K_VRH").sample(30, 2)
    prepared, _ = prepare(data, StructureFeaturizer(store, radius=3), report=None)
    config = CFTConfig(radius=3, n_slots=prepared.items[0].rows.shape[1], d_model=16, hidden=32)
    encoder, config = read_pretrained_encoder(pretrained_encoder, store, config)
    settings = NeuralSettings(train=TrainConfig(epochs=1, batch_size=8), cft=config, pretrained=encoder, device="cpu")
    train, test = np.arange(20), np.arange(20, len(prepared.values))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in METHODS:
            method = make_method(name, prepared, settings)
            assert isinstance(method, Method) and method.fit(train, 4) is method
            predicted = method.predict(test)
            assert predicted.shape == test.shape and np.isfinite(predicted).all(), name
            assert np.array_equal(method.predict(test), predicted), name
            assert np.array_equal(make_method(name, prepared, settings).fit(train, 4).predict(test), predicted), name
            if name in NEURAL:
                assert method.info["epochs"] == 1 and method.info["predict_structures_per_second"] > 0, name
                assert set(method.info) <= set(FoldResult.__dataclass_fields__), name
            else:
                assert method.info == {}, name
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(
        make_method("mean", prepared, settings).fit(train, 0).predict(test[:3]), [prepared.values[train].mean()] * 3
    )
    with pytest.raises(ResultError, match="unknown method 'forest'; choose from mean, composition-rf"):
        make_method("forest", prepared, settings)
    with pytest.raises(ResultError, match="only the neural methods"):
        make_method("mean", prepared, settings, start={})


def test_a_rerun_refuses_options_that_would_change_it(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(RunConfig("elastic_tensor", "log10_K_VRH", ("mean",)).to_toml())
    changed = ("--config", str(config), "--epochs", "3", "--lr=0.01", "--seed", "0", "--out", str(tmp_path / "x"))
    result = run_basisdb("evaluate", *changed)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "--seed, --epochs, --lr would change it" in result.stderr  # --seed too, though at its default
    assert not (tmp_path / "x").exists()


def test_a_config_with_an_unknown_setting_is_refused(tmp_path):
    good = RunConfig("elastic_tensor", "log10_K_VRH", ("mean",)).to_toml()
    for extra, unknown in (("wobble = 1\n", "wobble"), ("", "depth")):
        path = tmp_path / f"{unknown}.toml"
        path.write_text(extra + good.replace("[cft]\n", "[cft]\ndepth = 3\n" if unknown == "depth" else "[cft]\n"))
        with pytest.raises(ResultError, match=f"unknown setting\\(s\\) {unknown}"):
            read_config(path)
        result = run_basisdb("evaluate", "--config", str(path), "--out", str(tmp_path / "x"))
        assert result.returncode == 2 and f"unknown setting(s) {unknown}" in result.stderr, result.stderr


def test_train_on_a_built_in_dataset(dataset_dir, small_store, tmp_path):
    out = tmp_path / "ckpt"
    env = {**os.environ, "BASISDB_DATA_DIR": str(dataset_dir)}
    options = "--dataset elastic_tensor --target log10_G_VRH --radius 3 --d-model 32 --hidden 64"
    variant = ("--position-dropout", "0.25")  # recorded; the checkpoint predicts with it and the environment term
    result = run_basisdb("train", *options.split(), *variant, "--limit", "24", "--epochs", "1",
                         "--store", str(small_store), "--out", str(out), env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_val"] == 24
    missing = run_basisdb(
        "train", "--dataset", "elastic_tensor", "--out", str(tmp_path / "x"), "--store", str(small_store)
    )
    assert missing.returncode == 2 and "needs --target" in missing.stderr
    # the checkpoint records the dataset's own target and unit; a --unit of one's own is refused
    from basisdb.model.checkpoint import load_checkpoint, read_checkpoint

    assert (read_checkpoint(out)["target"], read_checkpoint(out)["unit"]) == ("log10_G_VRH", "log10(GPa)")
    assert read_checkpoint(out)["config"]["environment"] and read_checkpoint(out)["config"]["position_dropout"] == 0.25
    predictor = load_checkpoint(out, small_store)
    assert hasattr(predictor.model, "environment") and hasattr(predictor.model, "trained_groups")
    assert np.isfinite(predictor.predict([real("CsCl")])).all()
    unit = run_basisdb("train", *options.split(), "--unit", "GPa", "--out", str(tmp_path / "x"))
    assert unit.returncode == 2 and "--unit goes with --data: elastic_tensor's log10_G_VRH" in unit.stderr
    # too few structures: the message names the dataset (it once said "in None")
    paths = ("--store", str(small_store), "--out", str(tmp_path / "one"))
    one = run_basisdb("train", *options.split(), "--limit", "1", *paths, env=env)
    assert one.returncode == 2 and "Traceback" not in one.stderr, one.stderr
    assert "error: need at least 2 usable structures in elastic_tensor:log10_G_VRH, found 1" in one.stderr


def test_structure_features_equal_matminer_and_cover_the_noble_gases(parsed_dataset):
    import warnings

    from matminer.featurizers.structure import DensityFeatures

    from basisdb.model.baselines import structure_features

    data = parsed_dataset("elastic_tensor", "log10_K_VRH").subset(np.arange(40))
    features = structure_features(data.structures, range(40), range(1, 41))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = np.array([DensityFeatures().featurize(structure) for structure in data.structures])
    assert np.allclose(features[:, :3], oracle, rtol=1e-12, atol=0)
    assert np.array_equal(features[:, 3:], np.column_stack([range(40), range(1, 41)]))
    xenon = Structure(
        Lattice.cubic(6.2), ["Xe"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )  # matminer fails here
    (row,) = structure_features([xenon], [225], [1])
    assert np.isfinite(row).all() and 0 < row[2] < 1


def test_evaluate_prints_its_table_on_stdout_with_out_dash(dataset_dir, small_store, tmp_path, capsys, monkeypatch):
    """``--out -``: the table alone on stdout, every message on stderr, and no folder written
    (not even one named '-')."""
    from basisdb.model.evaluate import main

    monkeypatch.chdir(tmp_path)
    options = "--dataset elastic_tensor --target log10_K_VRH --methods mean,composition-rf --folds 2 --limit 30"
    paths = f"--store {small_store} --data-dir {dataset_dir} --radius 2 --out -"
    assert main([*options.split(), *paths.split()]) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[0].startswith("# elastic_tensor / log10_K_VRH") and "Rerun:" not in printed.out
    rows = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and "---" not in line]
    assert rows == ["method", "mean", "composition-rf"]
    assert "structures; encoding" in printed.err and "was not kept" in printed.err
    assert list(tmp_path.iterdir()) == []  # nothing written, no file named '-', no evaluation/
    with pytest.raises(SystemExit) as exited:
        main([*options.split(), *paths.split(), "--plots"])
    assert exited.value.code == 2 and "--plots draws into the run's folder" in capsys.readouterr().err
