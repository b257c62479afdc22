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

from basisdb import INVARIANCES, command_parser, run_command

from .checkpoint import load_checkpoint, looser_group_note
from .cli import add_device_argument, positive
from .data import read_structure_directory, read_structure_files


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m model.predict", __doc__)
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="a checkpoint directory written by python -m model.train"
    )
    parser.add_argument("--data", required=True, nargs="+", type=Path, help="a folder with id_prop.csv, or CIF files")
    parser.add_argument("--out", required=True, type=Path, help="CSV file to write")
    parser.add_argument("--store", type=Path, help="basis store (default: the checkpoint's, else the default store)")
    add_device_argument(parser)
    parser.add_argument(
        "--symprec", type=positive(float), help="spglib tolerance, Angstrom (default: the checkpoint's)"
    )
    parser.add_argument("--invariance", choices=INVARIANCES, help="frames (default: the checkpoint's)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.out.parent.is_dir():
        parser.error(f"--out {args.out}: the folder {args.out.parent} does not exist")
    predictor = load_checkpoint(
        args.checkpoint, store=args.store, device=args.device, symprec=args.symprec, invariance=args.invariance
    )
    if len(args.data) == 1 and args.data[0].is_dir():
        structures, _ = read_structure_directory(args.data[0])
    else:
        structures = read_structure_files(args.data)
    items, rejected = predictor.featurizer.encode_many(structures)
    for item in items:
        if item.looser_group is not None:
            print(f"warning: {looser_group_note(item, predictor.featurizer.symprec)}", file=sys.stderr)
    values = predictor.predict_encoded(items)
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["material_id", "prediction", "group", "looser_group", "n_frames"])
        for item, value in zip(items, values):
            writer.writerow([item.label, f"{value:.6g}", item.group, item.looser_group or "", item.n_frames])
    print(f"{len(items)} predictions written to {args.out}; {len(rejected)} structure(s) skipped")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
