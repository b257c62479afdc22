"""``basisdb predict --checkpoint CKPT --data DIR|FILES --out preds.csv|- [--limit N] [--batch-size B]``

DIR is a folder of structure files (every file in it, hidden ones excluded, in name order),
or a CGCNN-style folder whose ``id_prop.csv`` lists ``material_id,value`` rows (in its
order); FILES are structure files (in the order given).  A file is read by pymatgen (CIF,
POSCAR, CONTCAR, ``*.vasp``, pymatgen JSON, ...), else by ASE (extxyz, ...).

Writes one row per structure: its id, the prediction (the column is named after the target
and its unit where the checkpoint knows them, else ``prediction``), the value ``id_prop.csv``
gives (column ``true``, with such a folder), the space group it was predicted with, the
larger group a ten times looser tolerance finds (empty when none: see
:class:`basisdb.SymmetryToleranceWarning`) and the number of frames averaged; for a model trained
with ``--position-dropout``, also whether its positions were used (``positions``: ``no`` for a
space group the model was not trained on, which it predicts from elements and distances alone,
as the note on stderr says).  Structures
that cannot be used are listed with the reason in ``<out>.skipped.csv`` (``<out>`` without
its suffix) and summarized on stderr; when none could be predicted the command ends with
exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
from pathlib import Path

from basisdb import EXIT_FAILED, INVARIANCES, command_parser, run_command

from .checkpoint import PREDICT_BATCH_SIZE, load_checkpoint, looser_group_note
from .cli import STDOUT, add_device_argument, positive
from .data import read_structure_directory, read_structure_files

SHOWN_SKIPPED = 10  # reasons printed on stderr; the file has all of them


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("basisdb predict", __doc__)
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="a checkpoint directory written by basisdb train"
    )
    parser.add_argument(
        "--data",
        required=True,
        nargs="+",
        type=Path,
        help="a folder of structure files (with or without id_prop.csv), or structure files",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="CSV file to write, or - for standard output; skipped structures go to <out>.skipped.csv "
        "(with -, to standard error)",
    )
    parser.add_argument("--store", type=Path, help="basis store (default: the checkpoint's, else the default store)")
    parser.add_argument(
        "--limit",
        type=positive(),
        metavar="N",
        help="predict only the first N structures (a folder's files in name order, id_prop.csv's rows in "
        "its order, files as given); default: all",
    )
    parser.add_argument(
        "--batch-size", type=positive(), default=PREDICT_BATCH_SIZE, metavar="N", help="structures per forward pass"
    )
    add_device_argument(parser)
    parser.add_argument(
        "--symprec", type=positive(float), help="spglib tolerance, Angstrom (default: the checkpoint's)"
    )
    parser.add_argument("--invariance", choices=INVARIANCES, help="frames (default: the checkpoint's)")
    return parser


def skipped_path(out: Path) -> Path:
    """Where the skipped structures of ``out`` are listed: ``preds.csv`` -> ``preds.skipped.csv``."""
    return out.with_name(f"{out.stem if out.suffix else out.name}.skipped.csv")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    to_stdout = args.out == STDOUT  # the table alone on standard output; every message on standard error
    if not to_stdout and not args.out.parent.is_dir():
        parser.error(f"--out {args.out}: the folder {args.out.parent} does not exist")
    skipped_file = None if to_stdout else skipped_path(args.out)
    missing = [str(path) for path in args.data if not path.exists()]
    if missing:  # a mistyped path is the command's error, not a structure to skip
        parser.error(f"--data: no such file or folder: {', '.join(missing)}")
    if len(args.data) == 1 and args.data[0].is_dir():
        structures, truths = read_structure_directory(args.data[0], require_targets=False)
        ours = set() if to_stdout else {args.out.resolve(), skipped_file.resolve()}  # a rerun into the same folder
        structures = [(label, path) for label, path in structures if path.resolve() not in ours]
    else:
        folders = [str(path) for path in args.data if path.is_dir()]
        if folders:
            parser.error(f"--data takes one folder or structure files, not folders among several paths: {folders}")
        structures, truths = read_structure_files(args.data), {}
    source = str(args.data[0]) if len(args.data) == 1 else f"the {len(args.data)} files given"
    if not structures:
        print(f"nothing to predict: {source} holds no structure files (hidden ones skipped)", file=sys.stderr)
        return EXIT_FAILED
    if args.limit is not None:
        if args.limit > len(structures):
            print(
                f"note: --limit {args.limit}, but {source} has only {len(structures)} structure(s): predicting all",
                file=sys.stderr,
            )
        structures = structures[: args.limit]

    predictor = load_checkpoint(
        args.checkpoint, store=args.store, device=args.device, symprec=args.symprec, invariance=args.invariance
    )
    items, rejected = predictor.featurizer.encode_many(structures, report=None)
    for item in items:
        if item.looser_group is not None:
            print(f"warning: {looser_group_note(item, predictor.featurizer.symprec)}", file=sys.stderr)
    values = predictor.predict_encoded(items, args.batch_size) if items else []

    with_truth = bool(truths)
    # a model trained with --position-dropout predicts the groups it was not trained on without positions
    with_positions = predictor.model.config.position_dropout > 0
    without = sorted({item.group for item in items if not predictor.model.predicts_with_positions(item.group)})
    if without:
        print(
            f"note: groups {without} were not in the model's training data: their structures are predicted "
            "without positions (column 'positions')",
            file=sys.stderr,
        )
    with contextlib.nullcontext(sys.stdout) if to_stdout else open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n" if to_stdout else "\r\n")
        writer.writerow(
            ["material_id", value_column(predictor.target, predictor.unit)]
            + (["true"] if with_truth else [])
            + ["group", "looser_group", "n_frames"]
            + (["positions"] if with_positions else [])
        )
        for item, value in zip(items, values):
            truth = [repr(truths[item.label])] if with_truth else []
            positions = ["yes" if item.group not in without else "no"] if with_positions else []
            writer.writerow(
                [item.label, f"{value:.6g}", *truth, item.group, item.looser_group or "", item.n_frames, *positions]
            )
    if rejected:
        if skipped_file is not None:
            with open(skipped_file, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["material_id", "reason"])
                writer.writerows(rejected)
        where = f", listed in {skipped_file}" if skipped_file is not None else ""
        print(f"skipped {len(rejected)} of {len(structures)} structure(s){where}:", file=sys.stderr)
        shown = rejected if skipped_file is None else rejected[:SHOWN_SKIPPED]  # without a file, every one
        for label, reason in shown:
            print(f"  {label}: {reason}", file=sys.stderr)
        if len(rejected) > len(shown):
            print(f"  ... and {len(rejected) - len(shown)} more", file=sys.stderr)
    elif skipped_file is not None:
        skipped_file.unlink(missing_ok=True)  # a list left by an earlier run would belong to other predictions
    if not items:
        print(f"nothing predicted: none of the {len(structures)} structure(s) could be used", file=sys.stderr)
        return EXIT_FAILED
    where = "standard output" if to_stdout else args.out
    print(
        f"{len(items)} prediction(s) written to {where}; {len(rejected)} structure(s) skipped",
        file=sys.stderr if to_stdout else sys.stdout,
    )
    return 0


def value_column(target: str | None, unit: str | None) -> str:
    """The prediction column's name: ``"log10_K_VRH (log10(GPa))"``, the target alone, or
    ``"prediction"`` when the checkpoint does not say."""
    if target is None:
        return "prediction"
    return f"{target} ({unit})" if unit else target


if __name__ == "__main__":
    sys.exit(run_command(main))
