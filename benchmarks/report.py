"""Summary tables of ``basisdb evaluate`` runs, for BENCHMARKS.md.

Reads every ``results.json`` under a folder (default ``benchmarks/results``) and prints, in
Markdown: cross-validated MAE per target and method (with the best marked and the CFT's gap
to it), seen- against unseen-group MAE for held-out runs, fine-tuned against scratch CFT, and
wall times and throughput.

    python benchmarks/report.py [benchmarks/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cell(summary: dict, key: str, digits: int = 4) -> str:
    return f"{summary[key]['mean']:.{digits}f} ± {summary[key]['std']:.{digits}f}"


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results")
    runs = [json.loads(path.read_text()) for path in sorted(root.glob("*/results.json"))]
    cross_validated = [r for r in runs if not r["n_unseen"]]
    held_out = [r for r in runs if r["n_unseen"]]
    methods = ["mean", "composition-rf", "magpie-structure-rf", "cgcnn", "cft", "cft-pretrained"]

    print("| target | n | " + " | ".join(methods) + " | CFT vs best peer |")
    print("|---|---|" + "---|" * len(methods) + "---|")
    for run in cross_validated:
        results = run["results"]
        maes = {m: results[m]["summary"]["test_mae"]["mean"] for m in methods if m in results}
        best = min(maes, key=maes.get)
        peers = {m: v for m, v in maes.items() if not m.startswith("cft")}
        best_peer = min(peers, key=peers.get)
        cft = min(v for m, v in maes.items() if m.startswith("cft"))
        cells = [
            (
                "**" + cell(results[m]["summary"], "test_mae") + "**"
                if m == best
                else cell(results[m]["summary"], "test_mae")
            )
            if m in results
            else "-"
            for m in methods
        ]
        print(
            f"| {run['target']} ({run['unit']}) | {run['n_structures']} | "
            + " | ".join(cells)
            + f" | {100 * (cft / peers[best_peer] - 1):+.1f}% vs {best_peer} |"
        )

    print()
    print(
        "| target | method | RMSE | R^2 | wall (s, 5 folds) | epochs per fit | "
        "train structures/s | predict structures/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run in cross_validated:
        for method, result in run["results"].items():
            s = result["summary"]
            extra = (
                f"{s['epochs']:.0f} | {s['train_structures_per_second']:.0f} | {s['predict_structures_per_second']:.0f}"
                if "epochs" in s
                else "- | - | -"
            )
            print(
                f"| {run['target']} | {method} | {cell(s, 'test_rmse')} | {cell(s, 'test_r2', 3)} | "
                f"{s['seconds']:.0f} | {extra} |"
            )

    if held_out:
        print()
        print("| held-out groups | target | method | seen-group MAE | unseen-group MAE | unseen / seen |")
        print("|---|---|---|---|---|---|")
        for run in held_out:
            for method, result in run["results"].items():
                s = result["summary"]
                ratio = s["unseen_mae"]["mean"] / s["test_mae"]["mean"]
                print(
                    f"| {run['holdout_spec']} ({run['n_unseen']} structures) | {run['target']} | {method} | "
                    f"{cell(s, 'test_mae')} | {cell(s, 'unseen_mae')} | {ratio:.2f} |"
                )

    transfer = [r for r in cross_validated if "cft-pretrained" in r["results"]]
    if transfer:
        print()
        print(
            "| target | CFT from scratch | CFT fine-tuned from the orbit-distance encoder | "
            "folds where fine-tuning wins |"
        )
        print("|---|---|---|---|")
        for run in transfer:
            scratch, tuned = run["results"]["cft"], run["results"]["cft-pretrained"]
            wins = sum(t["test"]["mae"] < s["test"]["mae"] for s, t in zip(scratch["folds"], tuned["folds"]))
            print(
                f"| {run['target']} | {cell(scratch['summary'], 'test_mae')} | "
                f"{cell(tuned['summary'], 'test_mae')} | {wins} of {len(scratch['folds'])} |"
            )


if __name__ == "__main__":
    main()
