"""The shipped benchmark results: every run readable and self-consistent, every published table
the one its files give, and the pairing rules that keep comparisons honest."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from basisdb.model.results import (
    RECIPE_VERSIONS,
    ResultError,
    RunConfig,
    check_pairable,
    read_config,
    read_run,
    write_run,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import rerun  # noqa: E402
import tables  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RUNS = sorted(path.parent.relative_to(RESULTS).as_posix() for path in RESULTS.glob("*/*/config.toml"))


def test_every_shipped_run_reads_back_and_its_fold_errors_are_its_predictions():
    assert len(RUNS) > 50
    problems = []
    for name in RUNS:
        result = read_run(RESULTS / name)
        if read_config(RESULTS / name) != result.config:
            problems.append(f"{name}: config.toml is not the result's configuration")
        folds = result.config.folds
        tested = result.fold >= 0
        if not np.array_equal(tested, ~result.held_out):
            problems.append(f"{name}: a held-out structure is in a fold, or a seen one in none")
        counts = np.bincount(result.fold[tested], minlength=folds)
        for seed in result.seeds:
            for method, outcome in seed.methods.items():
                error = np.abs(outcome.out_of_fold - result.truth)
                if np.isnan(outcome.out_of_fold[tested]).any() or not np.isnan(outcome.out_of_fold[~tested]).all():
                    problems.append(f"{name} {method} seed {seed.training_seed}: predictions where there is no fold")
                    continue
                maes = np.bincount(result.fold[tested], weights=error[tested], minlength=folds) / counts
                recorded = outcome.fold_maes()
                if not np.allclose(maes, recorded, rtol=0, atol=1e-9):
                    problems.append(f"{name} {method} seed {seed.training_seed}: fold MAEs {recorded} != {maes}")
                if [fold.n_test for fold in outcome.folds] != counts.tolist():
                    problems.append(f"{name} {method}: fold sizes differ from the stored folds")
    assert not problems, "\n".join(problems)


def test_the_manifest_lists_every_shipped_run_and_only_those():
    manifest = tables.manifest()
    listed = {name for table in manifest for name in rerun.runs_of(table, manifest)}
    assert sorted(listed) == RUNS, "runs shipped but behind no table, or named by a table but not shipped"


def test_the_published_tables_are_those_the_result_files_give():
    text = {"BENCHMARKS.md": (ROOT / "BENCHMARKS.md").read_text(), "README.md": (ROOT / "README.md").read_text()}
    generated = {name: make() for name, make in tables.TABLES.items()}
    for name, table in generated.items():
        match = tables.marked(name).search(text["BENCHMARKS.md"])
        assert match, f"BENCHMARKS.md lacks the table {name!r}"
        assert match.group(2) == table, (
            f"BENCHMARKS.md's table {name!r} is stale: run python benchmarks/tables.py --write"
        )
    match = tables.marked("headline").search(text["README.md"])
    assert match and match.group(2) == generated["headline"], "README.md's headline table is stale"
    # the headline's first lines are the table, not history
    first_table = text["BENCHMARKS.md"].index("<!-- table:headline -->")
    assert text["BENCHMARKS.md"].count("\n", 0, first_table) < 20
    headings = re.findall(r"^#+ .*$", text["BENCHMARKS.md"], flags=re.M)
    dated = [h for h in headings if re.search(r"\d{4}-\d{2}-\d{2}|today", h, flags=re.I)]
    assert not dated, f"headings with dates: {dated}"


def test_the_headline_cft_is_chosen_on_validation_among_candidates_of_todays_recipe():
    for target in tables.TARGETS:
        candidates = tables.candidates(target)
        assert len(candidates) >= 4 and all(entry.current for entry in candidates)
        pick = tables.chosen(target)
        assert pick.validation() == min(entry.validation() for entry in candidates)


def test_pairing_refuses_other_materials_and_other_recipe_versions(tmp_path):
    result = read_run(RESULTS / "elastic_tensor-log10_K_VRH/cft")
    check_pairable(result, "cft", result, "cft")
    other_folds = dataclasses.replace(result, fold=np.roll(result.fold, 1))
    with pytest.raises(ResultError, match="same materials"):
        check_pairable(result, "cft", other_folds, "cft")
    older = dataclasses.replace(result, recipe_versions={"cft": RECIPE_VERSIONS["cft"] - 1})
    with pytest.raises(ResultError, match="different arithmetic"):
        check_pairable(result, "cft", older, "cft")
    cgcnn = read_run(RESULTS / "elastic_tensor-log10_K_VRH/cgcnn")
    check_pairable(result, "cft", cgcnn, "cgcnn")  # two methods, each at today's version
    with pytest.raises(ResultError, match="today's versions"):
        check_pairable(older, "cft", cgcnn, "cgcnn")
    # and a result survives its own writer and reader unchanged
    write_run(result, tmp_path / "copy")
    back = read_run(tmp_path / "copy")
    assert back.config == result.config and back.recipe_versions == result.recipe_versions
    assert np.array_equal(back.seeds[0].methods["cft"].out_of_fold, result.seeds[0].methods["cft"].out_of_fold)


def test_a_result_of_another_schema_version_or_with_an_unknown_setting_is_refused(tmp_path):
    folder = tmp_path / "run"
    write_run(read_run(RESULTS / "elastic_tensor-log10_K_VRH/forests"), folder)
    document = json.loads(gzip.decompress((folder / "results.json.gz").read_bytes()))
    (folder / "results.json.gz").write_bytes(gzip.compress(json.dumps({**document, "schema_version": 0}).encode()))
    with pytest.raises(ResultError, match="schema version 0"):
        read_run(folder)
    config = (folder / "config.toml").read_text()
    assert "[cft]\n" in config
    (folder / "config.toml").write_text(config.replace("[cft]\n", "[cft]\nframe_pairs = true\n"))
    with pytest.raises(ResultError, match="frame_pairs"):
        read_config(folder)


def test_a_label_is_the_difference_to_todays_defaults():
    config = RunConfig("elastic_tensor", "log10_K_VRH", ("cft",))
    assert config.label() == "today's defaults"
    changed = dataclasses.replace(config, routing="identity", cft=dataclasses.replace(config.cft, hidden=256))
    assert changed.label() == "identity routing, hidden 256"
    assert RunConfig.from_toml(changed.to_toml()) == changed


def test_rerun_names_each_tables_configurations(capsys):
    assert rerun.main(["headline", "learning-curve", "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()
    configs = [line.split("--config ")[1].split()[0] for line in printed]
    assert len(configs) == len(set(configs)) > 40
    assert all((Path.cwd() / path).is_file() or Path(path).is_file() for path in configs)
    with pytest.raises(SystemExit):
        rerun.main(["no-such-table", "--dry-run"])


def test_the_shipped_results_stay_small():
    files = [path for path in RESULTS.rglob("*") if path.is_file()]
    assert len(files) < 400
    assert sum(path.stat().st_size for path in files) < 10 * 2**20
    assert not [
        path
        for path in files
        if path.suffix in (".png", ".json") and "service" not in path.parts and "pretraining" not in path.parts
    ], "images or uncompressed results in benchmarks/results"
