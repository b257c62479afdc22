"""``python -m model.predict --checkpoint CKPT --data DIR|FILES --out preds.csv [--symprec S] [--invariance e3|proper]``

Writes one row per structure: its id, the prediction, the space group it was predicted with,
the larger group a ten times looser tolerance finds (empty when none: see
:class:`basisdb.SymmetryToleranceWarning`) and the number of frames averaged.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from basisdb import INVARIANCES, BasisDBError

from .checkpoint import load_checkpoint, looser_group_note
from .data import read_structure_directory, read_structure_files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, nargs="+", type=Path, help="a folder with id_prop.csv, or CIF files")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--symprec", type=float, default=None, help="spglib tolerance, Angstrom (default: the checkpoint's)")
    parser.add_argument("--invariance", choices=INVARIANCES, default=None, help="frames (default: the checkpoint's)")
    args = parser.parse_args(argv)
    try:
        predictor = load_checkpoint(args.checkpoint, store=args.store, device=args.device, symprec=args.symprec, invariance=args.invariance)
        if len(args.data) == 1 and args.data[0].is_dir():
            structures, _ = read_structure_directory(args.data[0])
        else:
            structures = read_structure_files(args.data)
        items, rejected = predictor.encoder.encode_many(structures)
        for item in items:
            if item.looser_group is not None:
                print(f"warning: {looser_group_note(item, predictor.encoder.symprec)}", file=sys.stderr)
        values = predictor.predict_encoded(items)
        with open(args.out, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["material_id", "prediction", "group", "looser_group", "n_frames"])
            for item, value in zip(items, values):
                writer.writerow([item.label, f"{value:.6g}", item.group, item.looser_group or "", item.n_frames])
        print(f"{len(items)} predictions written to {args.out}; {len(rejected)} structure(s) skipped")
        return 0
    except (BasisDBError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
