"""The CFT package on real structures (pymatgen's bundled test structures)."""

import csv
import json
import math
import os
import zlib

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from basisdb import BasisStore, StructureError, SymmetryToleranceWarning, build_store, get_setting
from basisdb.model import CFTConfig, CheckpointError, CrystalFourierTransformer, load_checkpoint
from basisdb.model.checkpoint import Prediction, Predictor, read_checkpoint, target_of
from basisdb.model.data import StructureFeaturizer
from basisdb.model.geometry import lattice_from_parameters, orbit_distance
from basisdb.redescriptions import REDESCRIPTIONS, mirrored

from .helpers import REAL, REPO_ROOT, free_port, randomize_pair_terms, real, run_basisdb, run_cli


@pytest.fixture(scope="module")
def predictor(small_store):
    torch.manual_seed(0)
    store = BasisStore.open(small_store)
    featurizer = StructureFeaturizer(store, radius=4)
    config = CFTConfig(radius=4, n_slots=featurizer.n_slots, d_model=32, hidden=64, layers=2, environment=True)
    return Predictor(CrystalFourierTransformer(config), featurizer, target_mean=1.0, target_std=2.0, device="cpu")


# -- orbit distance ------------------------------------------------------------------------


def brute_force(setting, lattice, x1, x2, reach=4):
    images = np.einsum("oij,pj->poi", setting.rotations.astype(float), x2) + setting.fractional_translations
    delta = x1[:, None, :] - images
    delta -= np.rint(delta)
    shifts = np.stack(np.meshgrid(*([np.arange(-reach, reach + 1)] * 3), indexing="ij"), -1).reshape(-1, 3)
    return np.linalg.norm((delta[:, :, None, :] + shifts) @ lattice, axis=-1).min(axis=(1, 2))


@pytest.mark.parametrize(
    "group, parameters",
    [
        (1, (4.0, 5.0, 6.0, 90, 90, 90)),
        (1, (3.5, 7.0, 4.5, 62, 118, 67)),  # strongly skewed triclinic
        (2, (5.0, 4.2, 6.3, 71, 109, 113)),
        (14, (5.0, 6.0, 7.0, 90, 124, 90)),  # skewed monoclinic
        (15, (9.0, 5.0, 6.0, 90, 117, 90)),
    ],
)
def test_orbit_distance_against_brute_force(group, parameters):
    setting = get_setting(group)
    lattice = lattice_from_parameters(*parameters)
    rng = np.random.default_rng(group)
    x1, x2 = rng.random((300, 3)), rng.random((300, 3))
    assert np.allclose(orbit_distance(setting, lattice, x1, x2), brute_force(setting, lattice, x1, x2), atol=1e-10)


def test_rounding_shortcut_overestimates_in_skewed_cells():
    setting, lattice = get_setting(1), lattice_from_parameters(3.5, 7.0, 4.5, 62, 118, 67)
    x1, x2 = np.random.default_rng(0).random((500, 3)), np.random.default_rng(1).random((500, 3))
    delta = x1 - x2
    shortcut = np.linalg.norm((delta - np.rint(delta)) @ lattice, axis=-1)
    exact = orbit_distance(setting, lattice, x1, x2)
    assert (shortcut >= exact - 1e-12).all() and (shortcut - exact).mean() > 0.1


# -- invariances ----------------------------------------------------------------------------


def relative_change(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(a)).max(), 1e-12))


def redescribed(cells, name):
    """Every cell re-described by ``name`` (seeded by the name), with its atoms' sources."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return zip(*[mirrored(cell) if name == "mirror image" else REDESCRIPTIONS[name](cell, rng) for cell in cells])


@pytest.fixture(scope="module")
def as_given(predictor, real_crystals):
    """Every other real crystal as given, with its prediction and atom encodings: computed
    once, for every re-description to be compared with."""
    cells = real_crystals[::2]
    return cells, predictor.predict(cells), [predictor.atom_encodings(cell) for cell in cells]


@pytest.mark.parametrize("name", sorted(REDESCRIPTIONS) + ["mirror image"])
def test_predictions_and_atom_encodings_are_invariant(predictor, as_given, name):
    """Same crystal, same answer, on a real crystal of every space group in the data: the
    prediction and every atom's encoding agree to 1e-5 relative (float32 model)."""
    cells, values, encodings = as_given
    others, sources = redescribed(cells, name)
    other_values = predictor.predict(list(others))  # about 1 +- 2 (target mean and spread)
    worst = float((np.abs(other_values - values) / np.maximum(np.abs(values), 1.0)).max())
    for cell, other, source, encoding in zip(cells, others, sources, encodings):
        change = relative_change(encoding[source], predictor.atom_encodings(other))
        assert change < 1e-5, (cell.label, change)
    assert worst < 1e-5, (cells[int(np.argmax(np.abs(other_values - values)))].label, worst)


@pytest.fixture(scope="module")
def every_term_predictor(small_store, real_crystals):
    """A CFT with every optional term on: environment, neighbour interactions, composition and position
    dropout, trained (as recorded) on the groups of every 8th crystal (one crystal per group), so that the rest
    are predicted without positions; the terms that start neutral get random weights."""
    torch.manual_seed(1)
    featurizer = StructureFeaturizer(BasisStore.open(small_store), radius=4)
    terms = dict(environment=True, interactions=True, composition=True, position_dropout=0.25)
    config = CFTConfig(radius=4, n_slots=featurizer.n_slots, d_model=32, hidden=64, layers=2, **terms)
    model = CrystalFourierTransformer(config)
    randomize_pair_terms(model)
    model.record_training_groups({featurizer.encode(cell).group for cell in real_crystals[::8]})
    return Predictor(model, featurizer, target_mean=1.0, target_std=2.0, device="cpu")


@pytest.fixture(scope="module")
def every_term_as_given(every_term_predictor, real_crystals):
    """Every 4th real crystal as given, with its prediction, computed once."""
    cells = real_crystals[::4]
    return cells, every_term_predictor.predictions(cells)


@pytest.mark.parametrize(
    "name",
    [
        "supercell [[1,1,0],[-1,1,0],[0,0,1]]",
        "relabelled (a+b,-a,c)",
        "relabelled (b,a,-c)",  # the c axis, polar in polar groups, reversed
        "random proper cell, origin and order",
        "mirror image",
    ],
)
def test_predictions_with_every_optional_term_are_invariant(every_term_predictor, every_term_as_given, name):
    """The terms that are not the default's still give the same crystal the same answer, on
    every 4th real crystal, both those predicted with their positions and those without."""
    predictor, worst, used = every_term_predictor, 0.0, set()
    cells, firsts = every_term_as_given
    others, _ = redescribed(cells, name)
    for cell, first, second in zip(cells, firsts, predictor.predictions(list(others))):
        assert first.positions == second.positions, cell.label
        used.add(first.positions)
        worst = max(worst, abs(first.value - second.value) / max(abs(first.value), 1.0))
    assert used == {True, False}  # both paths were exercised
    assert worst < 1e-5, worst


def test_pymatgen_and_ase_inputs(predictor):
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = real("LiFePO4")
    atoms = AseAtomsAdaptor.get_atoms(structure)  # an MSONAtoms, a subclass of ase.Atoms
    assert type(atoms).__name__ == "MSONAtoms"
    values = predictor.predict([structure, atoms])
    assert relative_change(values[0], values[1]) < 1e-5
    with pytest.raises(StructureError, match="cannot read structure 0 from a builtins.dict"):
        predictor.predict([{"lattice": [[1, 0, 0]]}])


def test_predictions_record_the_group_and_warn_about_a_looser_one(predictor):
    (prediction,) = predictor.predictions([real("BaNiO3")], labels=["BaNiO3"])
    assert (prediction.label, prediction.group, prediction.looser_group) == ("BaNiO3", 186, None)
    assert prediction.n_frames >= 2  # P6_3mc: the 2-fold axis perpendicular to c
    # pymatgen's Li2O is antifluorite distorted by a few hundredths of an Angstrom
    with pytest.warns(SymmetryToleranceWarning, match="finds space group 225 at symprec 0.1 A but 166 at 0.01 A"):
        (distorted,) = predictor.predictions([real("Li2O")])
    assert (distorted.group, distorted.looser_group) == (166, 225)
    relaxed = Predictor(
        predictor.model, StructureFeaturizer(predictor.featurizer.store, 4, symprec=0.1), 1.0, 2.0, device="cpu"
    )
    assert relaxed.predictions([real("Li2O")])[0].group == 225


@pytest.mark.parametrize("name", REAL)
def test_atom_encodings_follow_input_order_and_wyckoff_orbits(predictor, name):
    structure = real(name)
    encodings = predictor.atom_encodings(structure)
    assert encodings.shape == (len(structure), 32)
    orbits = SpacegroupAnalyzer(structure, symprec=1e-2).get_symmetry_dataset().equivalent_atoms
    for orbit in np.unique(orbits):
        members = encodings[orbits == orbit]
        assert np.abs(members - members[0]).max() < 1e-5 * np.abs(members).max()
    order = np.random.default_rng(2).permutation(len(structure))
    shuffled = predictor.atom_encodings(Structure.from_sites([structure[i] for i in order]))
    assert relative_change(encodings[order], shuffled) < 1e-5


@pytest.mark.slow  # 520 atoms
def test_large_structure(predictor):
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*([np.arange(9)] * 3), indexing="ij"), -1).reshape(-1, 3)[:520]
    positions = (grid + rng.uniform(-0.2, 0.2, grid.shape)) / 9
    species = rng.choice(["Si", "O", "Al"], size=len(positions))
    structure = Structure(Lattice.cubic(18.0), species, positions)
    assert predictor.atom_encodings(structure).shape == (520, 32)
    assert np.isfinite(predictor.predict([structure, real("Li2O")])).all()


# -- command lines, checkpoints, DDP --------------------------------------------------------


def test_pretrain_cli(pretrained_encoder):
    metrics = json.loads((pretrained_encoder / "metrics.json").read_text())
    assert set(metrics["per_crystal_system"]) == {"triclinic", "monoclinic", "hexagonal", "cubic"}
    rows = metrics["per_crystal_system"].values()  # the overall numbers are those of the systems together
    assert metrics["overall"]["n"] == sum(row["n"] for row in rows)
    for key in ("mae", "mean_distance"):
        assert metrics["overall"][key] == pytest.approx(
            sum(row["n"] * row[key] for row in rows) / metrics["overall"]["n"], rel=1e-5
        )
    assert "held-out MAE" in (pretrained_encoder / "stdout.txt").read_text()
    # fresh training pairs every epoch, the held-out ones (on lattices of their own) drawn once
    assert metrics["epochs"] == metrics["draws"] == 2 and metrics["drawing_seconds"] > 0
    assert metrics["readout"] == "distance"  # the paper's task unless --readout says otherwise
    assert (
        metrics["pairs_seen"] == 2 * metrics["n_pairs_per_epoch"] and metrics["n_held_out"] == metrics["overall"]["n"]
    )
    assert metrics["torch_threads"] == 1  # --threads makes the wall-time budget a CPU-time budget
    # the engine of basisdb.model.train: held-out pairs validate every epoch, the best epoch's weights are kept
    assert metrics["stopped"] == "epochs" and [entry["epoch"] for entry in metrics["history"]] == [1, 2]
    assert metrics["overall"]["mae"] == pytest.approx(
        metrics["history"][metrics["best_epoch"] - 1]["val_mae"], rel=1e-5
    )


def test_pretraining_draws_fresh_training_pairs_every_epoch(small_store):
    """Every epoch after the first trains on new pairs (a fixed set is learnt by heart); the
    held-out pairs never change."""
    from basisdb.model.pretrain import OrbitDistances

    featurizer = StructureFeaturizer(BasisStore.open(small_store), 3.0)
    task = OrbitDistances(featurizer, [1, 14], 20, 3, 0.2, seed=0, device=torch.device("cpu"))
    held, rng, drawn = task.held, np.random.default_rng(0), []
    for epoch in range(1, 6):
        before = task.pairs["distance"].clone()
        batches = task.epoch_batches(rng, 8, None)
        assert sorted(np.concatenate(batches)) == list(range(task.n_train))  # every training pair, once per epoch
        if not torch.equal(before, task.pairs["distance"]):
            drawn.append(epoch)
    assert drawn == [2, 3, 4, 5] and task.draws == 4 and task.held is held


def test_pretraining_readout_states_the_distance_or_its_square(small_store):
    """``readout="squared"`` takes the square of the embeddings' Euclidean distance as their
    orbit distance, in the loss and in validation alike; an unknown readout is refused."""
    from basisdb.model.modules import PositionalEncoder
    from basisdb.model.pretrain import READOUTS, OrbitDistances, embedding_distance

    featurizer = StructureFeaturizer(BasisStore.open(small_store), 3.0)
    cpu = torch.device("cpu")
    tasks = {
        readout: OrbitDistances(featurizer, [1, 221], 20, 2, 0.2, seed=0, device=cpu, readout=readout)
        for readout in READOUTS
    }
    held = tasks["distance"].held
    assert torch.equal(held["distance"], tasks["squared"].held["distance"])  # the same pairs, from the same seed
    torch.manual_seed(0)
    encoder = PositionalEncoder(featurizer.n_slots, 32, 16, 1, group_embedding=True).eval()
    index = torch.arange(len(held["distance"]))
    with torch.no_grad():
        distance = embedding_distance(encoder, held, index)
        squared = embedding_distance(encoder, held, index, "squared")
    assert torch.allclose(squared, distance**2, rtol=1e-4, atol=1e-6) and not torch.allclose(squared, distance)
    truth = held["distance"]
    for readout, stated in (("distance", distance), ("squared", squared)):
        assert tasks[readout].validate(encoder, cpu) == pytest.approx(float((stated - truth).abs().mean()), rel=1e-5)
    batch = np.arange(len(tasks["squared"].pairs["distance"]))
    loss = tasks["squared"].loss(encoder, batch, np.random.default_rng(0), cpu)
    with torch.no_grad():
        stated = embedding_distance(encoder, tasks["squared"].pairs, torch.as_tensor(batch), "squared")
    expected = torch.nn.functional.smooth_l1_loss(stated, tasks["squared"].pairs["distance"], beta=0.1)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="readout must be one of"):
        OrbitDistances(featurizer, [1], 20, 2, 0.2, seed=0, device=cpu, readout="cube")
    with pytest.raises(ValueError, match="readout must be one of"):
        embedding_distance(encoder, held, index, "cube")


@pytest.mark.slow  # `basisdb pretrain`
def test_pretraining_stops_on_its_budget_inside_an_epoch(small_store, tmp_path):
    """``--minutes`` bounds the wall time inside an epoch: an epoch of thousands of steps
    is cut at the budget (it once ran 5 minutes over a 1-minute budget)."""
    minutes, batch = 0.1, 8
    out = tmp_path / "pre"
    options = f"--radius 3 --groups 1,2,14 --samples-per-group 10000 --lattices-per-group 4 --batch-size {batch}"
    result = run_basisdb("pretrain", *options.split(), "--minutes", str(minutes), "--threads", "1", "--device", "cpu",
                       "--out", str(out), "--store", str(small_store), timeout=60 * minutes + 90)  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stopped"] == "budget" and metrics["epochs"] == len(metrics["history"]) == 1
    assert 1 <= metrics["steps"] < math.ceil(metrics["n_pairs_per_epoch"] / batch)  # stopped inside the first epoch
    assert "time budget spent" in result.stderr


@pytest.mark.slow  # CLI subprocess
def test_pretrain_refuses_groups_that_are_not_numbers(tmp_path):
    result = run_basisdb("pretrain", "--out", str(tmp_path / "pre"), "--groups", "abc")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "basisdb pretrain: error: argument --groups: cannot read 'abc'" in result.stderr


def unavailable_device() -> str:
    return "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"


@pytest.mark.slow  # CLI subprocesses
@pytest.mark.parametrize("command", ["pretrain", "train"])
def test_an_unavailable_device_is_a_clear_error_before_any_work(command, tmp_path):
    device = unavailable_device()
    source = ("--data", str(tmp_path)) if command == "train" else ()
    result = run_basisdb(
        command, "--out", str(tmp_path / "out"), *source, "--device", device, "--store", str(tmp_path / "no-store.h5")
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: device '{device}' is not available") and "available: cpu" in result.stderr


def test_every_command_shows_its_defaults_and_shares_one_recipe(capsys):
    """``--help`` of every model command shows the defaults; train, pretrain and evaluate
    take the model and training options from one definition, with the benchmark recipe's
    defaults (CFTConfig, TrainConfig; pretraining, a task of its own, has its own TrainConfig)."""
    from basisdb import run_command
    from basisdb.model import datasets, evaluate, predict, pretrain, train
    from basisdb.model.training import TrainConfig

    commands = [("train", train, []), ("pretrain", pretrain, []), ("evaluate", evaluate, [])]
    for command, module, argv in [*commands, ("predict", predict, []), ("data fetch", datasets, ["fetch"])]:
        with pytest.raises(SystemExit) as done:
            run_command(module.main, [*argv, "--help"])
        shown = capsys.readouterr().out
        assert done.value.code == 0 and shown.startswith(f"usage: basisdb {command}"), module.__name__
        assert "(default: " in shown, module.__name__
    architecture = CFTConfig()
    required = {
        train: ["--data", "x", "--out", "x"],
        pretrain: ["--out", "x"],
        evaluate: ["--dataset", "flla_2015", "--target", "t"],
    }
    parsed = {module: vars(module.build_parser().parse_args(argv)) for module, argv in required.items()}
    shared = {
        "radius": architecture.radius,
        "d_model": architecture.d_model,
        "hidden": architecture.hidden,
        "blocks": architecture.encoder_blocks,
        "device": None,
        "threads": None,
        "store": None,
    }
    for module, values in parsed.items():
        recipe = pretrain.RECIPE if module is pretrain else TrainConfig()
        expected = {
            **shared,
            "epochs": recipe.epochs,
            "batch_size": recipe.batch_size,
            "lr": recipe.learning_rate,
            "patience": recipe.patience,
            "minutes": recipe.max_minutes,
        }
        assert {option: values[option] for option in expected} == expected, module.__name__
    assert (pretrain.RECIPE.batch_size, pretrain.RECIPE.learning_rate, pretrain.RECIPE.max_minutes) == (512, 2e-3, 30.0)
    for values in (parsed[train], parsed[evaluate]):  # pretraining trains the positional encoder alone
        assert values["layers"] == architecture.layers
        assert values["environment"] is architecture.environment is True  # the recipe since 2026-12-02


@pytest.mark.parametrize(
    "command, argv, message",
    [
        ("pretrain", ["--out", "x", "--minutes", "-1"], "argument --minutes: expected a number >= 0, got '-1'"),
        (
            "train",
            ["--data", "x", "--out", "x", "--val-fraction", "1.5"],
            "argument --val-fraction: expected a number above 0 and below 1",
        ),
        (
            "evaluate",
            ["--dataset", "flla_2015", "--target", "t", "--methods", "cft,forest"],
            "unknown method(s) ['forest']",
        ),
        (
            "pretrain",
            ["--out", "x", "--readout", "cube"],
            "argument --readout: invalid choice: 'cube' (choose from ",  # the choices' quoting varies by Python
        ),
        (
            "evaluate",
            ["--dataset", "flla_2015", "--target", "t", "--holdout-groups", "cubik"],
            "argument --holdout-groups: cannot read 'cubik'",
        ),
        ("evaluate", ["--dataset", "flla_2015", "--target", "t", "--folds", "1"], "--folds must be at least 2, got 1"),
        (
            "evaluate",
            ["--dataset", "flla_2015", "--target", "t", "--pretrained", "x", "--no-positions"],
            "--pretrained fine-tunes the positional encoder, which --no-positions drops",
        ),
        (
            "evaluate",
            ["--dataset", "flla_2015", "--target", "t", "--position-dropout", "0.5", "--no-positions"],
            "--position-dropout leaves out the positional encoding at times; --no-positions drops it always",
        ),
        (
            "train",
            ["--data", "x", "--out", "x", "--position-dropout", "1"],
            "argument --position-dropout: expected a number at least 0 and below 1, got '1'",
        ),
        (
            "train",
            ["--dataset", "elastic_tensor", "--out", "x"],
            "--dataset elastic_tensor needs --target, one of log10_K_VRH",
        ),
    ],
)
def test_bad_option_values_are_usage_errors(command, argv, message, capsys):
    import importlib

    from basisdb import run_command

    with pytest.raises(SystemExit) as done:
        run_command(importlib.import_module(f"model.{command}").main, argv)
    assert done.value.code == 2 and message in capsys.readouterr().err


def test_train_predict_and_checkpoint_round_trip(trained, data_dir, small_store, tmp_path):
    stderr = (trained.parent / "stderr.txt").read_text()
    assert "bad: cannot parse CIF 'bad': no data block lists atom sites" in stderr  # rejected, by name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_val"] == 12 and metrics["rejected"][0]["id"] == "bad"
    assert len(metrics["history"]) == 3
    predictions = tmp_path / "preds.csv"
    result = run_basisdb(
        "predict",
        "--checkpoint",
        str(trained),
        "--data",
        str(data_dir),
        "--out",
        str(predictions),
        "--store",
        str(small_store),
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(predictions)))
    assert len(rows) == 12
    # the column is the target and unit given to `basisdb train --data`; id_prop.csv gives the truth
    assert list(rows[0]) == ["material_id", "density (g/cm3)", "true", "group", "looser_group", "n_frames"]
    assert target_of(read_checkpoint(trained)) == ("density", "g/cm3")
    truths = {row[0]: float(row[1]) for row in csv.reader(open(data_dir / "id_prop.csv"))}
    assert all(float(row["true"]) == truths[row["material_id"]] for row in rows)
    skipped = list(csv.reader(open(tmp_path / "preds.skipped.csv")))
    assert skipped[0] == ["material_id", "reason"] and [row[0] for row in skipped[1:]] == ["bad"]
    assert "cannot parse CIF 'bad': no data block lists atom sites" in skipped[1][1]
    assert "skipped 1 of 13 structure(s), listed in" in result.stderr and "  bad: cannot parse CIF" in result.stderr
    predictor = load_checkpoint(trained, store=small_store)
    again = predictor.predict([Structure.from_file(data_dir / f"{rows[0]['material_id']}.cif")])[0]
    assert np.isclose(again, float(rows[0]["density (g/cm3)"]), rtol=1e-5)


@pytest.mark.slow  # `basisdb train`, `predict`
def test_a_model_trained_with_position_dropout_keeps_its_training_groups(data_dir, small_store, tmp_path):
    """``basisdb train --position-dropout`` records the space groups of its training split in
    the checkpoint (each of the six crystals is there twice, so one validating copy leaves
    every group in training), which the loaded model keeps: it predicts any other group
    without positions."""
    out = tmp_path / "ckpt"
    options = "--radius 3 --epochs 2 --batch-size 4 --d-model 16 --hidden 32 --position-dropout 0.5"
    result = run_basisdb(
        "train", *options.split(), "--data", str(data_dir), "--out", str(out), "--store", str(small_store)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["n_val"] == 1
    predictor = load_checkpoint(out, store=small_store)
    assert predictor.model.config.position_dropout == 0.5
    encoded = [predictor.featurizer.encode(Structure.from_file(path)) for path in sorted(data_dir.glob("m*.cif"))]
    groups = {item.group for item in encoded}
    assert len(groups) == len(REAL)
    assert set(torch.nonzero(predictor.model.trained_groups).flatten().tolist()) == groups
    silicon = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])  # 227: never trained on
    silicon.to(filename=str(tmp_path / "si.cif"))
    seen, unseen = predictor.predictions([real("CsCl"), silicon])
    assert (seen.group, seen.positions) == (221, True) and (unseen.group, unseen.positions) == (227, False)
    rows = tmp_path / "preds.csv"
    result = predict_cli(out, small_store, rows, data_dir / "m5.cif", tmp_path / "si.cif")
    assert result.returncode == 0, result.stderr
    assert "note: groups [227] were not in the model's training data" in result.stderr
    written = list(csv.DictReader(open(rows)))
    assert [(row["group"], row["positions"]) for row in written] == [(str(seen.group), "yes"), ("227", "no")]


def predict_cli(checkpoint, store, out, *data, options=()):
    """``basisdb predict`` on ``data`` (a folder or files)."""
    paths = ("--checkpoint", str(checkpoint), "--store", str(store), "--out", str(out))
    return run_basisdb("predict", *paths, *options, "--data", *map(str, data))


def test_predict_a_folder_of_structure_files_in_any_format(trained, small_store, tmp_path):
    """No id_prop.csv: every file of the folder that pymatgen or ASE reads (a CIF, a POSCAR,
    an extxyz, a *.vasp), in name order; the others are listed with the reason; hidden
    files and the command's own output files are left alone."""
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    folder = tmp_path / "mixed"
    folder.mkdir()
    structure = real("LiFePO4")
    structure.to(filename=str(folder / "LiFePO4.cif"))
    structure.to(filename=str(folder / "POSCAR"))
    ase.io.write(folder / "LiFePO4_copy.extxyz", AseAtomsAdaptor.get_atoms(structure), format="extxyz")
    real("TiO2").to(filename=str(folder / "TiO2.vasp"))
    (folder / "notes.txt").write_text("not a crystal\n")
    (folder / ".hidden.cif").write_text("junk")
    out = folder / "preds.csv"  # written into the folder it reads: a second run must not read it
    for run in range(2):
        result = predict_cli(trained, small_store, out, folder)
        assert result.returncode == 0, result.stderr
        rows = list(csv.DictReader(open(out)))
        assert [row["material_id"] for row in rows] == ["LiFePO4", "LiFePO4_copy", "POSCAR", "TiO2"], run
        skipped = list(csv.reader(open(folder / "preds.skipped.csv")))
        assert [row[0] for row in skipped] == ["material_id", "notes"], run
    assert list(rows[0]) == ["material_id", "density (g/cm3)", "group", "looser_group", "n_frames"]  # no truth known
    assert "neither pymatgen nor ASE reads notes.txt" in skipped[1][1]
    assert "skipped 1 of 5 structure(s)" in result.stderr and "hidden" not in result.stderr
    assert "4 prediction(s) written" in result.stdout
    same = [float(row["density (g/cm3)"]) for row in rows[:3]]  # one crystal in three formats
    assert np.allclose(same, same[0], rtol=1e-4) and len({row["group"] for row in rows[:3]}) == 1
    listed = predict_cli(trained, small_store, tmp_path / "listed.csv", folder / "TiO2.vasp", folder / "POSCAR")
    assert listed.returncode == 0, listed.stderr
    rows_of_files = list(csv.DictReader(open(tmp_path / "listed.csv")))
    assert [row["material_id"] for row in rows_of_files] == ["TiO2", "POSCAR"]  # in the order given
    assert rows_of_files[0]["density (g/cm3)"] == rows[3]["density (g/cm3)"]
    assert not (tmp_path / "listed.skipped.csv").exists()


def test_predict_exits_1_when_nothing_is_predicted(trained, small_store, tmp_path):
    folder = tmp_path / "unreadable"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a crystal\n")
    (folder / "bad.cif").write_text("data_bad\n_cell_length_a 5\nloop_\n_atom_site_label\n")
    result = predict_cli(trained, small_store, tmp_path / "preds.csv", folder)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "nothing predicted: none of the 2 structure(s) could be used" in result.stderr
    assert [row[0] for row in csv.reader(open(tmp_path / "preds.skipped.csv"))] == ["material_id", "bad", "notes"]
    assert len(list(csv.reader(open(tmp_path / "preds.csv")))) == 1  # the header alone
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_text("")
    result = predict_cli(trained, small_store, tmp_path / "none.csv", empty)
    assert result.returncode == 1 and "nothing to predict: " in result.stderr, result.stderr
    missing = predict_cli(trained, small_store, tmp_path / "missing.csv", tmp_path / "nothing.cif")
    # a path that is not there is the command's usage error (2), named, before any work
    assert missing.returncode == 2 and "--data: no such file or folder: " in missing.stderr, missing.stderr
    assert "nothing.cif" in missing.stderr and not (tmp_path / "missing.csv").exists()


def test_predict_limit_is_never_silently_ignored(trained, small_store, data_dir, tmp_path):
    result = predict_cli(trained, small_store, tmp_path / "five.csv", data_dir, options=("--limit", "5"))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "five.csv")))
    assert [row["material_id"] for row in rows] == ["m0", "m1", "m2", "m3", "m4"]  # id_prop.csv's order
    assert not (tmp_path / "five.skipped.csv").exists() and "note:" not in result.stderr
    options = ("--limit", "100", "--batch-size", "3")
    result = predict_cli(trained, small_store, tmp_path / "all.csv", data_dir, options=options)
    assert result.returncode == 0, result.stderr
    assert f"note: --limit 100, but {data_dir} has only 13 structure(s): predicting all" in result.stderr
    rows_all = list(csv.DictReader(open(tmp_path / "all.csv")))
    column = "density (g/cm3)"
    assert len(rows_all) == 12 and [row[column] for row in rows_all[:5]] == [row[column] for row in rows]
    bad = run_basisdb("predict", "--checkpoint", str(trained), "--data", str(data_dir), "--out", "x", "--limit", "0")
    assert bad.returncode == 2 and "argument --limit: expected a number > 0" in bad.stderr


def test_predict_names_the_target_and_its_unit(dataset_dir, small_store, tmp_path, capsys):
    """A checkpoint trained on a built-in dataset knows its target and unit: the column says them."""
    out = tmp_path / "ckpt"
    env = {**os.environ, "BASISDB_DATA_DIR": str(dataset_dir)}
    options = "--dataset elastic_tensor --target log10_K_VRH --limit 12 --epochs 1 --radius 3 --d-model 32 --hidden 64"
    result = run_basisdb("train", *options.split(), "--store", str(small_store), "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    predictor = load_checkpoint(out, store=small_store)
    assert (predictor.target, predictor.unit) == ("log10_K_VRH", "log10(GPa)")
    real("CsCl").to(filename=str(tmp_path / "CsCl.cif"))
    result = predict_cli(out, small_store, tmp_path / "preds.csv", tmp_path / "CsCl.cif")
    assert result.returncode == 0, result.stderr
    header, row = list(csv.reader(open(tmp_path / "preds.csv")))
    assert header == ["material_id", "log10_K_VRH (log10(GPa))", "group", "looser_group", "n_frames"]
    assert row[0] == "CsCl" and np.isclose(float(row[1]), predictor.predict(tmp_path / "CsCl.cif"), rtol=1e-5)
    # --out -: the same table on standard output, every message on standard error, no file
    from basisdb.model.predict import main as predict_main

    argv = ["--checkpoint", str(out), "--store", str(small_store), "--data", str(tmp_path / "CsCl.cif"), "--out", "-"]
    assert predict_main(argv) == 0
    printed = capsys.readouterr()
    assert list(csv.reader(printed.out.splitlines())) == [header, row]
    assert "1 prediction(s) written to standard output" in printed.err and not (tmp_path / "-").exists()


def test_predictor_takes_one_structure_or_a_path(trained, small_store, data_dir):
    from pymatgen.io.ase import AseAtomsAdaptor

    predictor = load_checkpoint(trained, store=small_store)
    path = data_dir / "m0.cif"
    structure = Structure.from_file(path)
    one = predictor.predict(structure)
    assert isinstance(one, float)
    assert np.isclose(predictor.predict(str(path)), one, rtol=1e-5)  # a path, not a sequence of characters
    assert np.isclose(predictor.predict(path), one, rtol=1e-5)
    assert np.isclose(predictor.predict(path.read_text()), one, rtol=1e-5)  # CIF text, as the README says
    many = predictor.predict([str(path), structure, AseAtomsAdaptor.get_atoms(structure)])
    assert isinstance(many, np.ndarray) and many.shape == (3,) and np.allclose(many, one, rtol=1e-5)
    prediction = predictor.predictions(str(path))
    assert isinstance(prediction, Prediction) and prediction.label == "m0" and np.isclose(prediction.value, one)
    assert [p.label for p in predictor.predictions([path, structure], labels=["a", "b"])] == ["a", "b"]
    assert np.allclose(predictor.atom_encodings(str(path)), predictor.atom_encodings(structure), atol=1e-5)
    with pytest.raises(StructureError, match="nothing.cif: no such file"):
        predictor.predict(str(data_dir / "nothing.cif"))


def test_incompatible_store_is_a_clear_error(trained, tmp_path):
    other = tmp_path / "other.h5"
    build_store(other, radii=[2], settings="1-3", progress=False)
    with pytest.raises(CheckpointError, match=r"needs radius 3.0, which .* lacks"):
        load_checkpoint(trained, store=other)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")


@pytest.mark.slow  # two training processes
def test_ddp_training_with_torchrun(small_store, data_dir, tmp_path):
    out = tmp_path / "ddp"
    torchrun = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()))
    options = "--epochs 2 --batch-size 4 --d-model 32 --hidden 64 --device cpu"
    paths = ("--data", str(data_dir), "--out", str(out), "--store", str(small_store))
    result = run_cli(*torchrun, "-m", "basisdb", "train", *options.split(), *paths)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["world_size"] == 2


def test_element_property_table():
    from basisdb.model.modules import ELEMENT_PROPERTIES, element_property_table

    table = element_property_table()
    assert table.shape == (119, len(ELEMENT_PROPERTIES)) and table.dtype == np.float32
    assert np.isfinite(table).all() and not table[0].any()
    electronegativity = ELEMENT_PROPERTIES.index("X")
    assert table[8, electronegativity] > table[26, electronegativity] > table[55, electronegativity]  # O > Fe > Cs
    assert np.allclose(table[1:].mean(axis=0), 0, atol=0.05)


def test_positional_encoder_takes_the_group_and_lattice_terms_once_per_structure():
    """With ``structure``, the group and lattice terms are computed per structure and gathered
    for its rows: the same encoding as giving every row its structure's group and lattice."""
    from basisdb.model.modules import PositionalEncoder

    torch.manual_seed(0)
    encoder = PositionalEncoder(24, 32, 16, 2, group_embedding=True).eval()
    rows, structure = torch.randn(11, 24), torch.tensor([0, 0, 2, 1, 2, 2, 0, 1, 1, 2, 0])
    ita_numbers, lattice = torch.tensor([1, 225, 62]), torch.randn(3, 6)
    with torch.no_grad():
        per_row = encoder(rows, ita_numbers[structure], lattice[structure])
        gathered = encoder(rows, ita_numbers, lattice, structure=structure)
        swapped = encoder(rows, ita_numbers.flip(0), lattice.flip(0), structure=structure)
    assert torch.allclose(gathered, per_row, atol=1e-6)
    assert not torch.allclose(swapped, per_row, atol=1e-3)  # each row takes its own structure's terms


def test_pretrained_encoder_weights_load_without_the_group_embedding(small_store, tmp_path):
    from basisdb.model.checkpoint import load_pretrained_encoder, read_pretrained_encoder, save_checkpoint
    from basisdb.model.modules import PositionalEncoder

    store = BasisStore.open(small_store)
    n_slots = StructureFeaturizer(store, radius=3).n_slots
    pretrained_config = CFTConfig(
        radius=3, n_slots=n_slots, d_model=16, hidden=32, encoder_blocks=1, group_embedding=True
    )
    encoder = PositionalEncoder(n_slots, 32, 16, 1, group_embedding=True)
    save_checkpoint(tmp_path / "pre", kind="encoder", module=encoder, config=pretrained_config, store=store)
    payload, config = read_pretrained_encoder(tmp_path / "pre", store, CFTConfig(radius=3, n_slots=n_slots))
    assert (config.d_model, config.hidden, config.encoder_blocks, config.group_embedding) == (16, 32, 1, False)
    model = CrystalFourierTransformer(config)
    assert load_pretrained_encoder(model, payload) == ["group_embedding.weight"]
    assert torch.equal(model.encoder.position_in.weight, encoder.position_in.weight)
    with pytest.raises(CheckpointError, match="radius"):
        read_pretrained_encoder(tmp_path / "pre", store, CFTConfig(radius=4, n_slots=n_slots))
    wider = CrystalFourierTransformer(CFTConfig(radius=3, n_slots=n_slots, d_model=16, hidden=32, encoder_blocks=2))
    with pytest.raises(CheckpointError, match="another architecture"):
        load_pretrained_encoder(wider, payload)


def test_a_checkpoint_from_before_the_environment_term_loads_without_it(small_store, tmp_path):
    """Checkpoints written before ``CFTConfig.environment`` existed record no such field: they
    load as the model they were, without the term, although the term is now the default."""
    from basisdb.model.checkpoint import save_checkpoint

    store = BasisStore.open(small_store)
    featurizer = StructureFeaturizer(store, radius=3)
    torch.manual_seed(0)
    old = CFTConfig(radius=3, n_slots=featurizer.n_slots, d_model=16, hidden=32, environment=False)
    model = CrystalFourierTransformer(old)
    extra = {"symprec": featurizer.symprec, "target_mean": 0.0, "target_std": 1.0}
    path = save_checkpoint(tmp_path / "old", kind="cft", module=model, config=old, store=store, **extra)
    payload = torch.load(path, weights_only=False)
    del payload["config"]["environment"]
    torch.save(payload, path)
    loaded = load_checkpoint(path, store=store)
    assert not loaded.model.config.environment and not hasattr(loaded.model, "environment")
    expected = Predictor(model, featurizer, 0.0, 1.0, device="cpu").predict([real("CsCl")])
    assert np.allclose(loaded.predict([real("CsCl")]), expected)


def test_a_checkpoint_from_before_the_experiments_were_removed_loads_where_they_were_off(small_store, tmp_path):
    """Checkpoints written at git tag experiments-before-the-recipe record the experimental
    switches removed since: one that left them off loads without them; one that turned one on
    is refused with the switch and the tag named."""
    from basisdb.model.checkpoint import REMOVED_SWITCHES, save_checkpoint

    store = BasisStore.open(small_store)
    featurizer = StructureFeaturizer(store, radius=3)
    torch.manual_seed(0)
    config = CFTConfig(radius=3, n_slots=featurizer.n_slots, d_model=16, hidden=32)
    model = CrystalFourierTransformer(config)
    extra = {"symprec": featurizer.symprec, "target_mean": 0.0, "target_std": 1.0}
    path = save_checkpoint(tmp_path / "old", kind="cft", module=model, config=config, store=store, **extra)
    payload = torch.load(path, weights_only=True)
    architecture = ("frame_average", "frame_pairs", "pair_filter", "cell_statistics", "interaction_gates")
    payload["config"].update({key: REMOVED_SWITCHES[key] for key in architecture})
    payload["train_config"] = {"epochs": 3, "ema_decay": 0.0, "loss": "smooth_l1", "frames": "one"}
    torch.save(payload, path)
    assert read_checkpoint(path)["config"] == config.to_dict()
    assert read_checkpoint(path)["train_config"] == {"epochs": 3}
    expected = Predictor(model, featurizer, 0.0, 1.0, device="cpu").predict([real("CsCl")])
    assert np.array_equal(load_checkpoint(path, store=store).predict([real("CsCl")]), expected)
    for part, key, value in (("config", "pair_filter", True), ("train_config", "ema_decay", 0.999)):
        changed = {**payload, part: {**payload[part], key: value}}
        torch.save(changed, path)
        with pytest.raises(CheckpointError, match=rf"{key}={value!r}.*experiments-before-the-recipe"):
            load_checkpoint(path, store=store)


def test_the_shipped_pretrained_encoders_load(small_store):
    """The encoders shipped under benchmarks/results, written before the experimental switches
    were removed, still fine-tune a CFT (their group embedding left out)."""
    from basisdb.model.checkpoint import load_pretrained_encoder, read_pretrained_encoder

    shipped = sorted((REPO_ROOT / "benchmarks" / "results").glob("**/model.pt"))
    assert shipped, "the pretrained encoder is shipped under benchmarks/results"
    store = BasisStore.open(small_store)
    n_slots = StructureFeaturizer(store, radius=4).n_slots
    for path in shipped:
        with pytest.warns(UserWarning, match="trained with store"):  # another store, with the same bases
            payload, config = read_pretrained_encoder(path.parent, store, CFTConfig(n_slots=n_slots))
        model = CrystalFourierTransformer(config)
        assert load_pretrained_encoder(model, payload) == ["group_embedding.weight"], path
        assert torch.equal(model.encoder.position_in.weight, payload["state_dict"]["position_in.weight"])


def test_the_readmes_prediction_block_runs_as_written(trained, small_store, data_dir, tmp_path, monkeypatch):
    """README, Command line: ``load_checkpoint("runs/cft")`` and every call after it, with the
    inputs it names (a Structure, Atoms, "x.cif", "POSCAR"), all giving one crystal's value."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from .helpers import readme_python_block

    monkeypatch.setenv("BASISDB_STORE", str(small_store))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "cft").symlink_to(trained, target_is_directory=True)
    structure = Structure.from_file(data_dir / "m0.cif")
    structure.to(filename="x.cif")
    structure.to(filename="POSCAR")
    namespace = {"structure": structure, "atoms": AseAtomsAdaptor.get_atoms(structure)}
    exec(readme_python_block('m.predict([structure, atoms, "x.cif", "POSCAR"])'), namespace)
    m = namespace["m"]
    one = m.predict(structure)
    assert np.allclose(m.predict([structure, namespace["atoms"], "x.cif", "POSCAR"]), one, rtol=1e-5)
    assert (m.target, m.unit) == ("density", "g/cm3")
