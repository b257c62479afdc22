"""``python -m model.predict --checkpoint CKPT --data DIR|FILES --out preds.csv``"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from basisdb import BasisDBError

from .checkpoint import load_checkpoint
from .data import read_structure_directory, read_structure_files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.predict", description=__doc__)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, nargs="+", type=Path, help="a folder with id_prop.csv, or CIF files")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    try:
        predictor = load_checkpoint(args.checkpoint, store=args.store, device=args.device)
        if len(args.data) == 1 and args.data[0].is_dir():
            structures, _ = read_structure_directory(args.data[0])
        else:
            structures = read_structure_files(args.data)
        items, rejected = predictor.encoder.encode_many(structures)
        values = predictor.predict_encoded(items)
        with open(args.out, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["material_id", "prediction", "group"])
            for item, value in zip(items, values):
                writer.writerow([item.label, f"{value:.6g}", item.group])
        print(f"{len(items)} predictions written to {args.out}; {len(rejected)} structure(s) skipped")
        return 0
    except (BasisDBError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
