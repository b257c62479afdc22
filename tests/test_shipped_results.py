"""The evaluation results shipped behind BENCHMARKS.md hold what their tables are built from.

Every ``results.json`` under ``benchmarks/results`` must carry its out-of-fold predictions, and
each method's fold MAEs must be the MAEs of those predictions: a table can then be recomputed,
and a hand-edited or truncated file is caught.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
# The first two evaluations (compute-matched, 2026-11) were written before results.json kept
# predictions; BENCHMARKS.md lists them as superseded by the reruns beside them.
WITHOUT_PREDICTIONS = {"elastic_tensor-log10_K_VRH/results.json", "flla_2015-formation_energy_per_atom/results.json"}
RUNS = sorted(RESULTS.rglob("results.json"))


def test_results_are_shipped():
    assert len(RUNS) >= 40, f"only {len(RUNS)} results.json files under {RESULTS}"


@pytest.mark.parametrize("path", RUNS, ids=lambda p: str(p.relative_to(RESULTS).parent))
def test_fold_errors_are_those_of_the_out_of_fold_predictions(path):
    run = json.loads(path.read_text())
    if str(path.relative_to(RESULTS)) in WITHOUT_PREDICTIONS:
        assert "predictions" not in run or not run["predictions"]
        return
    predictions = run["predictions"]
    truth = np.asarray(predictions["truth"], dtype=float)
    in_folds = ~np.asarray(predictions["held_out"], dtype=bool)
    assert len(truth) == run["n_structures"] and int(in_folds.sum()) == run["n_seen"]
    assert set(predictions["out_of_fold"]) == set(run["results"])
    for method, result in run["results"].items():
        predicted = np.asarray(predictions["out_of_fold"][method], dtype=float)[in_folds]
        assert np.isfinite(predicted).all(), method
        sizes = np.array([fold["n_test"] for fold in result["folds"]])
        fold_mae = np.array([fold["test"]["mae"] for fold in result["folds"]])
        assert sizes.sum() == run["n_seen"], method
        assert np.abs(predicted - truth[in_folds]).mean() == pytest.approx(
            (sizes * fold_mae).sum() / sizes.sum(), rel=1e-9
        ), method


@pytest.mark.parametrize("path", RUNS, ids=lambda p: str(p.relative_to(RESULTS).parent))
def test_recorded_command_writes_where_the_results_are_shipped(path):
    """A run made in a scratch folder and copied here must say the folder that reproduces it."""
    command = json.loads(path.read_text())["command"].split()
    if "--out" not in command:  # the default folder
        return
    out = Path(command[command.index("--out") + 1])
    assert out == path.parent.relative_to(RESULTS.parents[1]), f"{path}: --out {out}"


def test_paired_folds_pairs_a_chosen_reference_over_the_seeds_both_methods_have():
    """``benchmarks/paired_folds.py --reference`` prints the per-fold difference of the seed
    averages, recomputed here from the shipped files (formation energy, converged): the CFT
    without the environment term (the converged runs) against the CGCNN, with the default CFT
    of 2026-12-02 (the term on, ``variants/environment``, the 256-wide encoder of its day) read
    beside it under its own label."""
    reference = "cft [no environment, hidden 256]"
    roots = [str(RESULTS / "converged"), str(RESULTS / "variants" / "environment")]
    script = str(RESULTS.parent / "paired_folds.py")
    command = [sys.executable, script, "--reference", reference, "--protocol", "converged", *roots]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    section = output.split("flla_2015 formation_energy_per_atom")[1].split("\n\n")[0]
    line = next(row for row in section.splitlines() if row.strip().startswith(f"{reference} - cgcnn "))

    def fold_maes(paths, method: str) -> dict[int, list[float]]:
        runs = [json.loads(path.read_text()) for path in paths]
        return {run["training_seed"]: [fold["test"]["mae"] for fold in run["results"][method]["folds"]] for run in runs}

    target = "flla_2015-formation_energy_per_atom"
    recipe = fold_maes((RESULTS / "converged").rglob(f"{target}-cft/results.json"), "cft")
    cgcnn = fold_maes((RESULTS / "converged").rglob(f"{target}-cgcnn/results.json"), "cgcnn")
    common = sorted(set(recipe) & set(cgcnn))
    assert len(common) >= 3
    difference = np.mean([np.subtract(recipe[s], cgcnn[s]) for s in common], axis=0)
    assert f"{difference.mean():+.4f} ± {difference.std(ddof=1):.4f}" in line
    assert f"better on {int((difference < 0).sum())} of 5 folds (seeds {common})" in line
    default = next(row for row in section.splitlines() if row.split("  ")[1:2] == ["cft [hidden 256]"])
    assert "seed means 0.1170-0.1222" in default  # the environment runs, not mixed into the reference


def test_paired_folds_scores_the_training_seeds_as_one_ensemble():
    """``--ensemble``: each method's fold MAEs are those of its seeds' mean out-of-fold
    prediction.  Checked through the identity that their fold-size-weighted mean is the MAE of
    that mean prediction over all structures (band gap, converged, the CGCNN's three seeds), and
    on a method fitted once (the forest), whose ensemble is itself: its folds, redrawn from the
    fold seed, give back the fold MAEs its run recorded."""
    script = str(RESULTS.parent / "paired_folds.py")
    forest_run = RESULTS / "magpie-structure-rf" / "dielectric_constant-band_gap"
    roots = [str(RESULTS / "converged"), str(forest_run)]
    command = [sys.executable, script, "--ensemble", "--protocol", "converged", *roots]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    section = output.split("dielectric_constant band_gap")[1].split("\n\n")[0]
    assert "training seeds as one ensemble" in section
    forest = next(row for row in section.splitlines() if row.strip().startswith("magpie-structure-rf "))
    recorded = json.loads((forest_run / "results.json").read_text())["results"]["magpie-structure-rf"]["folds"]
    assert json.loads(forest.split("folds ")[1].split("]")[0] + "]") == [round(f["test"]["mae"], 4) for f in recorded]
    line = next(row for row in section.splitlines() if row.strip().startswith("cgcnn "))
    printed = np.array(json.loads(line.split("folds ")[1].split("]")[0] + "]"))
    paths = (RESULTS / "converged").rglob("dielectric_constant-*-cgcnn/results.json")
    runs = [json.loads(path.read_text()) for path in paths]
    assert sorted(run["training_seed"] for run in runs) == [0, 1, 2]
    truth = np.asarray(runs[0]["predictions"]["truth"])
    mean = np.mean([run["predictions"]["out_of_fold"]["cgcnn"] for run in runs], axis=0)
    sizes = np.array([fold["n_test"] for fold in runs[0]["results"]["cgcnn"]["folds"]])
    assert (sizes * printed).sum() / sizes.sum() == pytest.approx(np.abs(mean - truth).mean(), abs=1e-4)
    single = np.mean([[fold["test"]["mae"] for fold in run["results"]["cgcnn"]["folds"]] for run in runs])
    assert printed.mean() < single  # averaging the seeds' predictions beats their average error here


def test_paired_folds_splits_each_methods_error_by_crystal_system():
    """``--by-system``: per crystal system, the mean absolute error of each method's
    out-of-fold predictions averaged over its training seeds, recomputed here from the shipped
    formation-energy CGCNN runs (three seeds) with the systems of spglib's ITA numbers; weighted
    by the printed structure counts they give back the method's overall MAE."""
    script = str(RESULTS.parent / "paired_folds.py")
    command = [sys.executable, script, "--by-system", "--protocol", "converged", str(RESULTS / "converged")]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    section = output.split("flla_2015 formation_energy_per_atom")[1].split("\n\n")[0]
    header = next(row for row in section.splitlines() if "by crystal system" in row)
    counts = {name: int(count) for name, count in re.findall(r"(\w+) \((\d+)\)", header.split(":", 1)[1])}
    line = next(row for row in section.splitlines() if row.strip().startswith("cgcnn ") and "folds" not in row)
    printed = dict(zip(counts, map(float, line.split()[1:])))
    runs = [json.loads(p.read_text()) for p in (RESULTS / "converged").rglob("flla_2015-*-cgcnn/results.json")]
    assert sorted(run["training_seed"] for run in runs) == [0, 1, 2]
    truth = np.asarray(runs[0]["predictions"]["truth"])
    errors = np.mean([np.abs(np.asarray(run["predictions"]["out_of_fold"]["cgcnn"]) - truth) for run in runs], 0)
    groups = np.asarray(runs[0]["predictions"]["group"])
    bounds = {"triclinic": (1, 2), "monoclinic": (3, 15), "orthorhombic": (16, 74), "tetragonal": (75, 142),
              "trigonal": (143, 167), "hexagonal": (168, 194), "cubic": (195, 230)}  # fmt: skip
    assert set(counts) == set(bounds)  # flla_2015 has every system
    for name, (low, high) in bounds.items():
        members = (groups >= low) & (groups <= high)
        assert counts[name] == members.sum()
        assert printed[name] == pytest.approx(errors[members].mean(), abs=6e-5)
    weighted = sum(counts[name] * printed[name] for name in counts) / sum(counts.values())
    assert weighted == pytest.approx(errors.mean(), abs=1e-4)


def test_paired_folds_compares_held_out_groups_only_when_asked():
    """``--held-out --score unseen`` pairs the unseen-group MAEs of runs with held-out groups
    (recomputed here from the shipped cubic hold-out of the CFT with and without positions,
    training seeds 0-2); without ``--held-out`` those runs are skipped."""
    roots = [RESULTS / "ablations" / "default", RESULTS / "converged" / "default"]
    script = str(RESULTS.parent / "paired_folds.py")
    reference = "cft [no positional encoding]"
    command = [sys.executable, script, "--held-out", "--score", "unseen", "--reference", reference, *map(str, roots)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    section = output.split("groups cubic held out, unseen-group MAE")[1].split("\n\n")[0]
    line = next(row for row in section.splitlines() if row.strip().startswith(f"{reference} - cft [hidden 256] "))

    def unseen(paths) -> np.ndarray:
        runs = [json.loads(path.read_text()) for path in paths]
        assert sorted(run["training_seed"] for run in runs) == [0, 1, 2]
        return np.mean([[fold["unseen"]["mae"] for fold in run["results"]["cft"]["folds"]] for run in runs], axis=0)

    ablated = unseen(roots[0].rglob("no-positions-holdout-cubic/results.json"))
    default = unseen(roots[1].rglob("*-holdout-cubic/results.json"))
    difference = ablated - default
    assert f"{difference.mean():+.4f} ± {difference.std(ddof=1):.4f}" in line
    assert f"better on {int((difference < 0).sum())} of 5 folds (seeds [0, 1, 2])" in line
    plain = subprocess.run([sys.executable, script, *map(str, roots)], capture_output=True, text=True, check=True)
    assert "held out" not in plain.stdout and "no positional encoding" in plain.stdout  # the K ablation alone
    refused = subprocess.run(
        [sys.executable, script, "--score", "unseen", str(roots[0])], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "add --held-out" in refused.stderr


def test_paired_folds_names_what_a_run_departs_from_the_recipe_in():
    """A variant's label names its departures from today's defaults, model and training, so
    that two variants of one method in one table are never merged under one name; sizes that
    do not apply are left out (the encoder's of a CFT without positions, and those a fine-tuned
    CFT takes from its encoder, which the label names when it is not the first one)."""
    names = ("all-frames", "compact-1layer", "pretrained", "encoder-hidden-128", "centring")
    names += ("frame-averaged-encodings", "frame-pairs", "transfer-formation-energy")
    roots = [RESULTS / "variants" / name for name in names] + [RESULTS / "ablations" / "default"]
    script = str(RESULTS.parent / "paired_folds.py")
    command = [sys.executable, script, "--protocol", "converged", *map(str, roots)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = [line.strip().split(" ± ")[0] for line in output.splitlines() if line.startswith("  ") and " ± " in line]
    labels = {row.rsplit(" ", 1)[0].strip() for row in rows}  # each row: the label, then its MAE
    assert {
        "cft",  # today's recipe: a 128-wide positional encoder
        "cft [hidden 256]",  # the recipe before 2026-12-04
        "cft [hidden 256, trained on all frames]",
        "cft [frames averaged in the encodings]",  # trained on every frame, as it must be: not named twice
        "cft [frames averaged in the encodings, frame pairs]",
        "cft [transfer from flla_2015:formation_energy_per_atom]",  # both networks, named apart from scratch
        "cgcnn [transfer from flla_2015:formation_energy_per_atom]",
        "cft [d_model 64, hidden 64, encoder_blocks 2, layers 1]",
        "cft [no positional encoding]",
        "cft [identity routing, hidden 256]",
        "cft-pretrained",
    } <= labels


# Runs whose commands BENCHMARKS.md gives in its text rather than in a script: the forests (one
# command per dataset, "A stronger cheap peer"), the frames rerun (`benchmarks/results/frames/`) and
# the first budgeted runs, directly under benchmarks/results ("The older compute-matched sections").
IN_THE_TEXT = ("benchmarks/results/magpie-structure-rf/", "benchmarks/results/frames/")


def what_it_runs(command: str, environment: bool | None = None, hidden: int | str | None = None) -> frozenset:
    """A ``basisdb`` command as a set: its (option, value) pairs and bare switches in any order,
    ``--training-seed 0`` (every day's default) dropped, and the two CFT defaults that changed
    (the environment term, 2026-12-02; the encoder's width, 2026-12-04) stated as values: taken
    from ``environment`` and ``hidden`` where given (a run's recorded settings), else from the
    command with today's defaults; a fine-tuned CFT has its pretrained encoder's width."""
    words, items, index = shlex.split(command), [], 0
    while index < len(words):
        word = words[index]
        takes_value = word.startswith("--") and index + 1 < len(words) and not words[index + 1].startswith("--")
        items.append((word, words[index + 1].rstrip("/")) if takes_value else (word,))
        index += 2 if takes_value else 1
    if environment is None:  # the last of the two switches counts, as for argparse
        switches = [item[0] for item in items if item[0] in ("--environment", "--no-environment")]
        environment = switches[-1:] != ["--no-environment"]
    if hidden is None:  # the last --hidden counts, as for argparse
        hidden = int(next((item[1] for item in reversed(items) if item[0] == "--hidden"), 128))
    if any(item[0] == "--pretrained" for item in items):
        hidden = "the pretrained encoder's"  # its architecture overrides the command's
    items = [item for item in items if item[0] not in ("--environment", "--no-environment", "--hidden")]
    return frozenset(item for item in items if item != ("--training-seed", "0")) | {
        ("environment", environment),
        ("hidden", hidden),
    }


def test_every_shipped_run_is_rerun_by_the_benchmark_scripts(tmp_path):
    """``benchmarks/converged.sh`` and ``compute_matched.sh`` print, with ``basisdb`` replaced by
    a program that echoes its arguments, the command of every shipped run, up to option order and
    the switches that keep a run made under older defaults the same run today (compared with
    the settings the run recorded), so BENCHMARKS.md's rows rerun from the scripts it names."""
    fake = tmp_path / "basisdb"
    fake.write_text('#!/bin/sh\necho "basisdb $*"\n')
    fake.chmod(0o755)
    environment = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    printed = set()
    for script in ("converged.sh", "compute_matched.sh"):
        lines = subprocess.run(["bash", str(RESULTS.parent / script)], env=environment, capture_output=True,
                               text=True, check=True).stdout.splitlines()  # fmt: skip
        printed |= {what_it_runs(line) for line in lines}
    missing = []
    for path in RUNS:
        out = str(path.parent.relative_to(RESULTS.parents[1]))
        if out.startswith(IN_THE_TEXT) or path.parent.parent == RESULTS:
            continue
        run = json.loads(path.read_text())
        cft = run["settings"]["cft"]
        # runs made before the environment term existed do not record it
        if what_it_runs(run["command"], bool(cft.get("environment")), int(cft["hidden"])) not in printed:
            missing.append(out)
    assert not missing, f"no script reruns {len(missing)} shipped runs: {missing[:5]}"
