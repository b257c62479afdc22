"""Redraw the figures of every ``basisdb evaluate`` run from its results.json, with the
current plotting code (:func:`basisdb.model.evaluate.plots`), next to the file.

    python benchmarks/replot.py [benchmarks/results ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from basisdb.model.evaluate import plots


def main() -> None:
    for root in [Path(p) for p in sys.argv[1:]] or [Path("benchmarks/results")]:
        for path in sorted(root.rglob("results.json")):
            report = json.loads(path.read_text())
            if "predictions" not in report:  # runs from before evaluate kept them
                print(f"{path}: no out-of-fold predictions, not redrawn", file=sys.stderr)
                continue
            for picture in plots(report, path.parent):
                print(picture)


if __name__ == "__main__":
    main()
