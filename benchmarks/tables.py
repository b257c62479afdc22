"""Every table of BENCHMARKS.md, computed from the shipped runs: never typed by hand.

    python benchmarks/tables.py            # print every table (Markdown)
    python benchmarks/tables.py --write    # and put each into BENCHMARKS.md (the headline into README.md too)

A run is a folder of ``benchmarks/results`` (``config.toml`` beside ``results.json.gz``,
:mod:`basisdb.model.results`); ``benchmarks/manifest.toml`` lists the runs behind each table,
and ``python benchmarks/rerun.py TABLE`` reruns them from their configurations.

Conventions, the same in every table (and stated once, in BENCHMARKS.md):

- a method's MAE is the mean over its training seeds of its MAE over the five folds' test
  structures; "± sd" is the sample standard deviation over the training seeds (nothing with
  one seed);
- a paired difference is taken fold by fold, between the two methods' fold MAEs averaged over
  the training seeds each has, and given as the mean over the folds ± their sample standard
  deviation, with the folds in which the first method is better;
- two runs are paired only when their folds hold the same materials (their stored ids and fold
  assignments) and their arithmetic is comparable (``RECIPE_VERSIONS``), else the table refuses
  them (:func:`basisdb.model.results.check_pairable`);
- a variant of the CFT is chosen on its validation MAE (mean over seeds and folds of the best
  epoch's validation MAE), never on the test folds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from basisdb.model.results import EvaluationResult, ResultError, check_pairable, read_run, recipe_version

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
MANIFEST = ROOT / "manifest.toml"
BENCHMARKS = ROOT.parent / "BENCHMARKS.md"
README = ROOT.parent / "README.md"

TARGETS = {
    "elastic_tensor-log10_K_VRH": "log10 K_VRH",
    "elastic_tensor-log10_G_VRH": "log10 G_VRH",
    "flla_2015-formation_energy_per_atom": "formation energy",
    "dielectric_constant-band_gap": "band gap",
}
SHORT = {"forest, composition + structure": "forest + structure", "forest, composition": "forest"}
BASELINES = {  # row label: (run within a target, method)
    "training mean": ("forests", "mean"),
    "forest, composition": ("forests", "composition-rf"),
    "forest, composition + structure": ("forests", "magpie-structure-rf"),
    "CGCNN": ("cgcnn", "cgcnn"),
}


@cache
def run(name: str) -> EvaluationResult:
    return read_run(RESULTS / name)


@cache
def manifest() -> dict:
    return tomllib.loads(MANIFEST.read_text())


@dataclass(frozen=True)
class Entry:
    """One method of one run: ``fold_maes`` (seeds, folds)."""

    run: str
    method: str

    @property
    def result(self) -> EvaluationResult:
        return run(self.run)

    def fold_maes(self, part: str = "test") -> np.ndarray:
        return np.array([m.fold_maes(part) for m in self.result.of(self.method)])

    def mae(self, part: str = "test") -> tuple[float, float | None]:
        """Mean over seeds of the fold-mean MAE, and its sample sd over seeds (None with one)."""
        per_seed = self.fold_maes(part).mean(axis=1)
        return float(per_seed.mean()), (float(per_seed.std(ddof=1)) if len(per_seed) > 1 else None)

    def validation(self) -> float | None:
        values = [m.validation_mae for m in self.result.of(self.method)]
        return None if any(v is None for v in values) else float(np.mean(values))

    @property
    def seeds(self) -> int:
        return len(self.result.seeds)

    @property
    def version(self) -> int:
        return self.result.recipe_versions[self.method]

    @property
    def current(self) -> bool:
        """Whether today's code runs this method's arithmetic (the run reruns as it was)."""
        return self.version == recipe_version(self.method)


def paired(a: Entry, b: Entry, part: str = "test") -> tuple[float, float, int]:
    """Fold by fold, ``a`` minus ``b`` (each averaged over its seeds): mean, sample sd over the
    folds, folds where ``a`` is lower."""
    check_pairable(a.result, a.method, b.result, b.method, (a.run, b.run))
    difference = a.fold_maes(part).mean(axis=0) - b.fold_maes(part).mean(axis=0)
    return float(difference.mean()), float(difference.std(ddof=1)), int((difference < 0).sum())


def cell(value: float, sd: float | None, digits: int = 4) -> str:
    return f"{value:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def signed(mean: float, sd: float, won: int, reference: float, folds: int = 5) -> str:
    return f"{mean:+.4f} ± {sd:.4f} ({100 * mean / reference:+.1f}%, {won}/{folds})"


# -- the CFT chosen on validation ----------------------------------------------------------------


def candidates(target: str) -> list[Entry]:
    """The CFT's variants of a target that a published CFT is chosen among: every run the
    manifest lists as a candidate (each over three training seeds, converged, on every
    structure)."""
    return [
        entry
        for entry in (Entry(name, "cft") for name in manifest()["variants"]["runs"] if name.startswith(target + "/"))
        if entry.current
    ]


def chosen(target: str) -> Entry:
    """The candidate with the lowest validation MAE."""
    return min(candidates(target), key=lambda entry: entry.validation())


def label_of(entry: Entry) -> str:
    """The run's differences to today's defaults, and its recipe version where not today's."""
    return entry.result.config.label() + ("" if entry.current else f" (recipe {entry.version})")


# -- tables --------------------------------------------------------------------------------------


def headline() -> str:
    rows = {label: {t: Entry(f"{t}/{name}", method) for t in TARGETS} for label, (name, method) in BASELINES.items()}
    rows["CFT, the recipe"] = {t: Entry(f"{t}/cft", "cft") for t in TARGETS}
    rows["CFT, chosen on validation ¹"] = {t: chosen(t) for t in TARGETS}
    maes = {label: {t: entry.mae() for t, entry in entries.items()} for label, entries in rows.items()}
    best = {t: min(maes[label][t][0] for label in rows) for t in TARGETS}
    lines = [
        "| method | " + " | ".join(TARGETS.values()) + " |",
        "|---|" + "---|" * len(TARGETS),
    ]
    for label in rows:
        cells = []
        for t in TARGETS:
            value, sd = maes[label][t]
            text = cell(value, sd)
            cells.append(f"**{text}**" if value == best[t] else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    differences = []
    for t in TARGETS:
        cft = rows["CFT, chosen on validation ¹"][t]
        peers = {label: rows[label][t] for label in BASELINES if label != "training mean"}
        peer_label, peer = min(peers.items(), key=lambda item: item[1].mae()[0])
        mean, sd, won = paired(cft, peer)
        differences.append(f"{signed(mean, sd, won, peer.mae()[0])} vs {SHORT.get(peer_label, peer_label)}")
    lines.append("| CFT chosen − best other, paired by fold (folds won) | " + " | ".join(differences) + " |")
    notes = [
        f"{TARGETS[t]}: {label_of(chosen(t))} (validation MAE {chosen(t).validation():.4f}, "
        f"{len(candidates(t))} candidates)"
        for t in TARGETS
    ]
    return (
        "\n".join(lines)
        + "\n\n¹ The CFT's variant with the lowest validation MAE, per target: "
        + "; ".join(notes)
        + "."
    )


def choice() -> str:
    """Every candidate of every target: validation and test MAE."""
    lines = ["| target | CFT variant | validation MAE | test MAE |", "|---|---|---|---|"]
    for t, name in TARGETS.items():
        pick = chosen(t)
        for entry in sorted(candidates(t), key=lambda e: e.validation()):
            marker = "**" if entry == pick else ""
            lines.append(
                f"| {name} | {marker}{label_of(entry)}{marker} | {entry.validation():.4f} | {cell(*entry.mae())} |"
            )
    return "\n".join(lines)


def ablations() -> str:
    """Each ablation against the recipe it was made from (same width), paired by fold."""
    lines = [
        "| target | ablation | reference | MAE | ablation − reference (folds better) | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for name, reference in manifest()["ablations"]["pairs"]:
        a, b = Entry(name, "cft"), Entry(reference, "cft")
        mean, sd, won = paired(a, b)
        target = TARGETS[name.split("/")[0]]
        lines.append(
            f"| {target} | {label_of(a)} | {label_of(b)} | {cell(*a.mae())} | "
            f"{signed(mean, sd, won, b.mae()[0])} | {min(a.seeds, b.seeds)} |"
        )
    return "\n".join(lines)


def unseen() -> str:
    lines = [
        "| method | seeds | seen-group MAE | unseen-group MAE | unseen / seen |",
        "|---|---|---|---|---|",
    ]
    for name, method in manifest()["unseen"]["rows"]:
        entry = Entry(name, method)
        seen, seen_sd = entry.mae("test")
        held, held_sd = entry.mae("unseen")
        what = method if method != "cft" else f"cft, {label_of(entry)}"
        lines.append(f"| {what} | {entry.seeds} | {cell(seen, seen_sd)} | {cell(held, held_sd)} | {held / seen:.2f} |")
    return "\n".join(lines)


def learning_curve() -> str:
    spec = manifest()["learning-curve"]
    sizes = spec["sizes"]
    methods = spec["methods"]
    lines = [
        "| training structures | " + " | ".join(label for label, _, _ in methods) + " | CFT − identity-routed CFT |"
    ]
    lines.append("|---|" + "---|" * (len(methods) + 1))
    for size in sizes:
        entries = [Entry(f"{spec['prefix']}/{run_name.format(size=size)}", method) for _, run_name, method in methods]
        maes = [entry.mae() for entry in entries]
        best = min(value for value, _ in maes)
        cells = [f"**{cell(*m)}**" if m[0] == best else cell(*m) for m in maes]
        cft, identity = (
            entries[[label for label, _, _ in methods].index(name)] for name in ("CFT", "CFT, identity routing")
        )
        mean, sd, won = paired(cft, identity)
        size_label = f"{entries[0].result.seeds[0].methods[entries[0].method].folds[0].n_train:,}"
        lines.append(f"| {size_label} | " + " | ".join(cells) + f" | {signed(mean, sd, won, identity.mae()[0])} |")
    return "\n".join(lines)


def pairs_table(section: str) -> str:
    """Rows of (label, run a, method a, run b, method b): a against b, paired by fold."""
    lines = ["| target | method | MAE | against | difference (folds better) |", "|---|---|---|---|---|"]
    for name_a, method_a, name_b, method_b in manifest()[section]["pairs"]:
        a, b = Entry(name_a, method_a), Entry(name_b, method_b)
        mean, sd, won = paired(a, b)

        def describe(entry: Entry) -> str:
            default = entry.result.config.label() == "today's defaults"
            return entry.method + ("" if default else f", {label_of(entry)}")

        target = TARGETS[name_a.split("/")[0]]
        lines.append(
            f"| {target} | {describe(a)} | {cell(*a.mae())} | {describe(b)} | {signed(mean, sd, won, b.mae()[0])} |"
        )
    return "\n".join(lines)


def compute_matched() -> str:
    lines = ["| target | CFT | CGCNN | CFT − CGCNN (folds better) |", "|---|---|---|---|"]
    for t, name in TARGETS.items():
        cft, cgcnn = Entry(f"{t}/compute-matched", "cft"), Entry(f"{t}/compute-matched", "cgcnn")
        mean, sd, won = paired(cft, cgcnn)
        lines.append(
            f"| {name} | {cell(*cft.mae())} | {cell(*cgcnn.mae())} | {signed(mean, sd, won, cgcnn.mae()[0])} |"
        )
    return "\n".join(lines)


def pretraining() -> str:
    lines = ["| encoder | held-out MAE / mean orbit distance | pairs held out |", "|---|---|---|"]
    for name, label, _ in manifest()["pretraining"]["encoders"]:
        metrics = json.loads((RESULTS / "pretraining" / name / "metrics.json").read_text())["overall"]
        lines.append(f"| {label} | {metrics['mae_over_mean_distance']:.4f} | {metrics['n']:,} |")
    lines += [
        "",
        "| target | CFT fine-tuned from the first encoder | the same CFT from scratch "
        "| fine-tuned − scratch (folds better) |",
        "|---|---|---|---|",
    ]
    for name in manifest()["pretraining"]["runs"]:
        tuned = Entry(name, "cft-pretrained")
        scratch = Entry(name.split("/")[0] + "/cft-hidden-256", "cft")
        try:
            mean, sd, won = paired(tuned, scratch)
            difference = signed(mean, sd, won, scratch.mae()[0])
        except ResultError:  # the scratch run is of an older recipe version
            difference = "not paired: " + f"the scratch run is of recipe {scratch.version}"
        lines.append(
            f"| {TARGETS[name.split('/')[0]]} | {cell(*tuned.mae())} | {cell(*scratch.mae())}"
            f"{'' if scratch.current else f' (recipe {scratch.version})'} | {difference} |"
        )
    return "\n".join(lines)


def claims() -> str:
    """The paper's claims, one line each, beside what these runs measured."""
    spec = manifest()["learning-curve"]
    smallest = spec["sizes"][0]
    lc_cft = Entry(f"{spec['prefix']}/learning-curve-{smallest}", "cft")
    lc_identity = Entry(f"{spec['prefix']}/learning-curve-{smallest}-identity-routing", "cft")
    lc_mean, _, lc_won = paired(lc_cft, lc_identity)
    routing, routing_reference = (Entry(name, "cft") for name in manifest()["ablations"]["pairs"][0])
    routing_mean, _, routing_won = paired(routing, routing_reference)
    unseen_rows = {method: Entry(name, method) for name, method in manifest()["unseen"]["rows"][:4]}
    unseen_cft = Entry(manifest()["unseen"]["rows"][4][0], "cft")
    ratio = {label: e.mae("unseen")[0] / e.mae("test")[0] for label, e in {**unseen_rows, "cft": unseen_cft}.items()}
    fresh = json.loads(
        (RESULTS / "pretraining" / manifest()["pretraining"]["encoders"][0][0] / "metrics.json").read_text()
    )
    firsts = [name for t, name in TARGETS.items() if _best_label(t) == "CFT, chosen on validation ¹"]
    rows = [
        (
            "exact invariance under the space group helps prediction",
            f"log10 K, the CFT − the same CFT with identity routing (the P1 basis): {-routing_mean:+.4f} "
            f"({-100 * routing_mean / routing.mae()[0]:+.1f}%), the CFT better in {5 - routing_won} of 5 folds",
        ),
        (
            "it helps most when data is scarce",
            f"the same at {lc_cft.result.seeds[0].methods['cft'].folds[0].n_train} training structures: "
            f"{lc_mean:+.4f} ({100 * lc_mean / lc_identity.mae()[0]:+.1f}%), the CFT better in {lc_won} of 5 folds",
        ),
        (
            "a smaller gap between seen and unseen space groups",
            f"cubic groups held out of log10 K, unseen / seen MAE: CFT {ratio['cft']:.2f}, CGCNN {ratio['cgcnn']:.2f}, "
            f"forest {ratio['magpie-structure-rf']:.2f}",
        ),
        (
            "orbit-distance pretraining reaches held-out MAE / mean distance 0.037",
            f"{fresh['overall']['mae_over_mean_distance']:.3f} after 30 CPU-minutes",
        ),
        (
            "competitive with graph networks on material properties",
            f"first on {len(firsts)} of {len(TARGETS)} targets ({', '.join(firsts) or 'none'}); see the table above",
        ),
    ]
    lines = ["| the paper | measured here |", "|---|---|"]
    return "\n".join(lines + [f"| {claim} | {measured} |" for claim, measured in rows])


def _best_label(target: str) -> str:
    """The row of the headline table with the lowest MAE on ``target``."""
    rows = {label: Entry(f"{target}/{name}", method) for label, (name, method) in BASELINES.items()}
    rows["CFT, chosen on validation ¹"] = chosen(target)
    return min(rows, key=lambda label: rows[label].mae()[0])


TABLES = {
    "headline": headline,
    "claims": claims,
    "choice": choice,
    "ablations": ablations,
    "unseen": unseen,
    "learning-curve": learning_curve,
    "transfer": lambda: pairs_table("transfer"),
    "compute-matched": compute_matched,
    "pretraining": pretraining,
}


def marked(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- table:{re.escape(name)} -->\n)(.*?)(\n<!-- /table:{re.escape(name)} -->)", re.S)


def written(text: str, tables: dict[str, str]) -> str:
    """``text`` with each table between its markers replaced."""
    for name, table in tables.items():
        pattern = marked(name)
        if not pattern.search(text):
            raise SystemExit(f"no markers for the table {name!r} (<!-- table:{name} --> ... <!-- /table:{name} -->)")
        text = pattern.sub(lambda match, table=table: match.group(1) + table + match.group(3), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the tables in BENCHMARKS.md")
    parser.add_argument("tables", nargs="*", help=f"the tables to print: {', '.join(TABLES)} (default: all)")
    args = parser.parse_args()
    unknown = [name for name in args.tables if name not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    tables = {name: TABLES[name]() for name in (args.tables or TABLES)}
    if args.write:
        BENCHMARKS.write_text(written(BENCHMARKS.read_text(), tables))
        if "headline" in tables:  # the README's results open with the same table
            README.write_text(written(README.read_text(), {"headline": tables["headline"]}))
    for name, table in tables.items():
        print(f"## {name}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
