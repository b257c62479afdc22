"""From structures to model inputs.

Every structure is standardized with spglib into the store's setting of its space group,
then encoded in each of its frames (:func:`basisdb.crystal_frames`): the cosets of the
group in its Euclidean normalizer for the crystal's metric, with the polar origin fixed.
The frames are the equally valid standardizations, and a model averaged over them gives the
same answer for the same crystal whatever cell, origin, orientation, handedness (in the
default ``"e3"`` invariance) or atom order it came in.

Features of one atom are the real invariant basis functions of its group, placed in fixed
"slots" (the position of each orbit's first frequency in the frequency set), so that one
positional encoder (:class:`basisdb.model.modules.PositionalEncoder`) serves all 230 groups with a
fixed input width.  :class:`StructureFeaturizer` makes them; "encoder" in this package is
only ever that torch module.
"""

from __future__ import annotations

import csv
import glob
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from basisdb import (
    DEFAULT_SYMPREC,
    MAX_ANCHORS,
    METRICS,
    BasisStore,
    Cell,
    CrystalFrames,
    Invariance,
    Standardization,
    StructureError,
    crystal_frames,
    frequency_set,
)

from .datasets import DatasetError
from .encoded import EncodedStructure, distinct_row_indices
from .encoding_cache import EncodingCache, cell_key

if TYPE_CHECKING:
    import torch  # imported where batches are made: encoding worker processes never load it

__all__ = [
    "EncodedStructure",
    "StructureFeaturizer",
    "Batch",
    "SizeGroups",
    "TensorBatch",
    "collate",
    "lattice_features",
    "pair_radial",
    "centring_classes",
    "RADIAL_CENTRES",
    "as_cell",
    "read_structure_directory",
    "read_structure_files",
    "LATTICE_FEATURES",
    "ROUTINGS",
]

LATTICE_FEATURES = 6
ROUTINGS = ("group", "identity")
P1_HALL = 1  # the setting of P1: its invariant basis is every plane wave


def lattice_features(lattice: np.ndarray) -> np.ndarray:
    """(..., 6) float32 rotation-invariant description of lattices (..., 3, 3):
    log lengths (Angstrom) and cosines of the angles, from the metric L L^T."""
    metric = lattice @ np.swapaxes(lattice, -1, -2)
    lengths = np.sqrt(np.diagonal(metric, axis1=-2, axis2=-1))
    cos_alpha = metric[..., 1, 2] / (lengths[..., 1] * lengths[..., 2])
    cos_beta = metric[..., 0, 2] / (lengths[..., 0] * lengths[..., 2])
    cos_gamma = metric[..., 0, 1] / (lengths[..., 0] * lengths[..., 1])
    return np.concatenate([np.log(lengths), np.stack([cos_alpha, cos_beta, cos_gamma], axis=-1)], axis=-1).astype(
        np.float32
    )


RADIAL_CENTRES = np.arange(0.0, 8.01, 0.5)  # Angstrom
RADIAL_WIDTH = 0.5
# Gaussian tails below this are zero: subnormal float32 values (below 1.2e-38) make the CPU's
# matrix products several times slower (the CGCNN trained 6.5x slower with them).
SUBNORMAL_CUT = 1e-30


def pair_radial(lattice: np.ndarray, positions: np.ndarray, centres: np.ndarray | None = None) -> np.ndarray:
    """(C, M, K) float32 radial profile of atom pairs: for a centre atom i and an atom j, the
    sum over all periodic images of j within 8 A of i (i itself excluded) of Gaussians
    exp(-((d - c_k) / 0.5)^2) centred at c_k = 0, 0.5, ..., 8 A.  Unlike one minimum-image
    distance it counts every image, so coordination shells of small cells are seen whole.
    ``centres`` (C,) are the centre atoms' indices, every atom (C = M) when None."""
    centres = np.arange(len(positions)) if centres is None else np.asarray(centres, dtype=np.int64)
    centre, neighbour, _, distance = radial_neighbours(lattice, positions, centres)
    n = len(positions)
    out = np.zeros((len(centres) * n, len(RADIAL_CENTRES)), dtype=np.float64)
    np.add.at(out, centre * n + neighbour, np.exp(-(((distance[:, None] - RADIAL_CENTRES) / RADIAL_WIDTH) ** 2)))
    out[out < SUBNORMAL_CUT] = 0.0
    return out.reshape(len(centres), n, -1).astype(np.float32)


def radial_neighbours(
    lattice: np.ndarray, positions: np.ndarray, centres: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The pairs a radial profile sums over: for each centre atom (an index into ``centres``),
    every other atom's image within reach of the last Gaussian (8.5 A), as (centre, neighbour,
    image (lattice vector, fractional), distance) arrays, the atom itself left out."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    cartesian = np.ascontiguousarray(positions @ lattice, dtype=np.float64)
    centre, neighbour, image, distance = find_points_in_spheres(
        cartesian,
        np.ascontiguousarray(cartesian[centres]),
        float(RADIAL_CENTRES[-1] + RADIAL_WIDTH),
        np.ones(3, dtype=np.int64),
        np.ascontiguousarray(lattice, dtype=np.float64),
    )
    keep = distance > 1e-8
    return centre[keep], neighbour[keep], image[keep], distance[keep]


def centring_classes(primitive_atoms: np.ndarray, label: str = "") -> np.ndarray:
    """(P, C) int64: row p holds the C standardized atoms at primitive atom p
    (:attr:`basisdb.Standardization.primitive_atoms`), which the setting's C centring
    translations map onto each other; the first of each row is the one the model keeps."""
    primitive_atoms = np.asarray(primitive_atoms, dtype=np.int64)
    counts = np.bincount(primitive_atoms)
    if counts.min() != counts.max():
        raise StructureError(
            f"{label or 'structure'}: spglib maps {counts.min()} to {counts.max()} standardized atoms onto one "
            "primitive atom, where a centring gives every primitive atom the same number; try another symprec"
        )
    return np.argsort(primitive_atoms, kind="stable").reshape(len(counts), int(counts[0]))


class StructureFeaturizer:
    """Standardizes structures and encodes them in the invariant basis of their group (the
    model's input), against one store at one radius.

    ``symprec`` is spglib's tolerance (Angstrom); ``invariance`` chooses the frames:
    ``"e3"`` (a crystal and its mirror image are one) or ``"proper"`` (rotations only);
    ``max_anchors`` is passed on to :func:`basisdb.crystal_frames`.

    ``routing="identity"`` is an ablation: every structure is still standardized and framed
    by its group, but encoded with the plain Fourier features of the P1 basis (every plane
    wave, no routing into the group's invariant functions).
    """

    def __init__(
        self,
        store: BasisStore,
        radius: float,
        symprec: float = DEFAULT_SYMPREC,
        invariance: Invariance = "e3",
        max_anchors: int = MAX_ANCHORS,
        routing: str = "group",
    ):
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
        self.store = store
        self.radius = float(radius)
        self.symprec = float(symprec)
        self.invariance = invariance
        self.max_anchors = int(max_anchors)
        self.routing = routing
        store.check_radius(self.radius)
        self.n_slots = max(len(frequency_set(metric, self.radius)) for metric in METRICS)
        self._slots: dict[int, np.ndarray] = {}

    def slots(self, hall: int) -> np.ndarray:
        """(n_basis,) slot of each real basis function of a setting."""
        if hall not in self._slots:
            basis = self.store.basis(hall=hall, radius=self.radius)
            present = np.flatnonzero(basis.column_row >= 0)
            _, first = np.unique(basis.column_row[present], return_index=True)
            self._slots[hall] = present[first]
        return self._slots[hall]

    def features(self, hall: int, positions: np.ndarray) -> np.ndarray:
        """(N, n_slots) float32 slot features of fractional positions in a setting."""
        basis = self.store.basis(hall=hall, radius=self.radius)
        values = basis.encode(positions, real=True)  # double, then float32: no extra noise
        out = np.zeros((positions.shape[0], self.n_slots), dtype=np.float32)
        out[:, self.slots(hall)] = values
        return out

    def encode(self, structure: Any, label: str = "") -> EncodedStructure:
        """The model input of one structure (anything :func:`as_cell` takes)."""
        cell = as_cell(structure, label=label)
        framed = self.frames(cell)
        standard = framed.standardization
        hall = standard.setting.hall_number
        # A centring translation maps the structure onto itself, so the atoms it relates have
        # the same invariant features in every frame, the same neighbourhood and the same
        # Transformer outputs: the model keeps one atom per class, and each pair's profile per
        # copy of the second atom (see CrystalFourierTransformer.pair_bias).  Plain P1
        # features (the identity-routing ablation) tell the copies apart: it keeps every atom.
        classes = self.centring_classes(standard)
        kept = classes[:, 0]
        positions = framed.positions[:, kept]
        n_frames, n_atoms, _ = positions.shape
        features = self.features(hall if self.routing == "group" else P1_HALL, positions.reshape(-1, 3))
        first, row_index = distinct_row_indices(features)
        rows = features[first]
        atom_of_standardized = np.empty(standard.cell.n_atoms, dtype=np.int64)
        atom_of_standardized[classes] = np.arange(len(classes))[:, None]
        radial = pair_radial(standard.cell.lattice, standard.cell.positions, centres=kept)
        return EncodedStructure(
            label=cell.label,
            group=standard.setting.group,
            hall_number=hall,
            numbers=standard.cell.numbers[kept],
            rows=rows,
            row_index=row_index.reshape(n_frames, n_atoms).astype(np.int32),
            weights=framed.weights,
            lattice=lattice_features(standard.cell.lattice),
            radial=radial[:, classes],
            input_to_standardized=atom_of_standardized[standard.input_to_standardized],
            looser_group=standard.looser_group,
        )

    def frames(self, cell: Cell) -> CrystalFrames:
        """The frames of a cell, with this featurizer's tolerance, invariance and anchors."""
        return crystal_frames(cell, symprec=self.symprec, invariance=self.invariance, max_anchors=self.max_anchors)

    def centring_classes(self, standard: Standardization) -> np.ndarray:
        """(P, C) the standardized atoms the model keeps (column 0) and their centring copies
        (:func:`centring_classes`); every atom alone for the identity-routing ablation."""
        if self.routing == "group":
            return centring_classes(standard.primitive_atoms, standard.cell.label)
        return np.arange(standard.cell.n_atoms)[:, None]

    def encode_many(
        self,
        structures: Iterable[tuple[str, Any]],
        report=sys.stderr,
        cache: EncodingCache | None = None,
        workers: int = 1,
        progress: bool = True,
    ) -> tuple[list[EncodedStructure], list[tuple[str, str]]]:
        """Encode (label, structure) pairs (structures as :func:`as_cell` takes them: a path is
        read here); those that fail are returned with the reason and reported, never dropped
        silently.

        With ``cache`` (:class:`basisdb.model.encoding_cache.EncodingCache`), structures encoded
        before under the same configuration are read back instead, and new ones are added to
        it.  ``workers`` > 1 encodes in as many processes; ``progress`` shows a bar on stderr.
        """
        encoded: dict[int, EncodedStructure] = {}
        rejected: list[tuple[int, str, str]] = []
        known = cache.load() if cache is not None else {}
        missing: list[tuple[int, str, str, Cell]] = []  # (order, label, key, cell)
        for order, (label, structure) in enumerate(structures):
            try:
                cell = as_cell(structure, label=label)
            except StructureError as exc:
                rejected.append((order, label, str(exc)))
                continue
            key, label = cell_key(cell), label or cell.label  # the caller's label wins over a Cell's own
            if key in known:
                encoded[order] = replace(known[key], label=label)
            else:
                missing.append((order, label, key, cell))
        added = {}
        for (order, label, key, _), result in zip(
            missing, self._encode_cells([cell for *_, cell in missing], workers, progress)
        ):
            if isinstance(result, str):
                rejected.append((order, label, result))
            else:
                encoded[order] = replace(result, label=label)
                added[key] = replace(result, label="")
        if cache is not None and added:
            cache.save({**known, **added})
        rejected.sort()
        if rejected and report is not None:
            print(f"skipped {len(rejected)} structure(s):", file=report)
            for _, label, reason in rejected:
                print(f"  {label}: {reason}", file=report)
        return [encoded[order] for order in sorted(encoded)], [(label, reason) for _, label, reason in rejected]

    def _encode_cells(self, cells: list[Cell], workers: int, progress: bool) -> Iterator[EncodedStructure | str]:
        """The encoding of each cell, or the reason it was rejected, in order."""
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(cells),
            desc="encoding structures",
            unit="structure",
            disable=not progress or not cells,
            file=sys.stderr,
        )
        try:
            if workers <= 1 or len(cells) < 2 * workers:
                for cell in cells:
                    yield _encode_or_reason(self, cell)
                    bar.update()
                return
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            settings = (
                str(self.store.path),
                self.radius,
                self.symprec,
                self.invariance,
                self.max_anchors,
                self.routing,
            )
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                workers, mp_context=context, initializer=_start_encoding_worker, initargs=settings
            ) as pool:
                for result in pool.map(_encode_in_worker, cells, chunksize=16):
                    yield result
                    bar.update()
        finally:
            bar.close()


def _encode_or_reason(featurizer: StructureFeaturizer, cell: Cell) -> EncodedStructure | str:
    try:
        return featurizer.encode(cell)
    except StructureError as exc:
        return str(exc)


_WORKER_FEATURIZER: StructureFeaturizer | None = None


def _start_encoding_worker(
    store_path: str, radius: float, symprec: float, invariance: Invariance, max_anchors: int, routing: str
) -> None:
    global _WORKER_FEATURIZER
    _WORKER_FEATURIZER = StructureFeaturizer(
        BasisStore.open(store_path, progress=False), radius, symprec, invariance, max_anchors, routing
    )


def _encode_in_worker(cell: Cell) -> EncodedStructure | str:
    return _encode_or_reason(_WORKER_FEATURIZER, cell)


class TensorBatch:
    """Mixin for dataclasses of tensors: ``.to(device)`` moves every field."""

    def to(self, device):
        return replace(self, **{k: v.to(device) for k, v in vars(self).items()})


@dataclass
class Batch(TensorBatch):
    """Padded model input for B (structure, frame) sequences of S structures.

    Attributes:
        rows: (R, n_slots) float32, the distinct slot-feature rows of the batch's structures
            (:attr:`EncodedStructure.rows`); row_structure: (R,) int64, the structure of each.
        row_of: (B, N) int64, the row of each atom of each sequence (0 where padded).
        numbers: (B, N) int64; mask: (B, N) bool, True for real atoms.
        ita_numbers: (S,) int64 space groups; lattice: (S, 6) float32; radial: (S, N, N, C, K)
        float32 pair radial profiles, one per centring copy of the second atom
        (:attr:`EncodedStructure.radial`; 0 where padded); copies: (S, C) bool, True for
        the centring copies a structure has (C is the batch's most).
        owner: (B,) int64, the structure each sequence belongs to (several frames of one
        structure share it); weight: (B,) float32, the sequence's weight in its structure's
        average.
    """

    rows: torch.Tensor
    row_structure: torch.Tensor
    row_of: torch.Tensor
    numbers: torch.Tensor
    mask: torch.Tensor
    ita_numbers: torch.Tensor
    lattice: torch.Tensor
    radial: torch.Tensor
    copies: torch.Tensor
    owner: torch.Tensor
    weight: torch.Tensor

    def first_sequences(self) -> torch.Tensor:
        """(S,) int64: the first sequence of each structure.  A structure's frames share its
        atoms, so ``mask[first_sequences()]`` and ``numbers[first_sequences()]`` are (S, N)."""
        import torch

        structures = torch.arange(self.radial.shape[0], device=self.owner.device)
        return torch.searchsorted(self.owner, structures)  # collate lays each structure's frames out together


@dataclass(frozen=True)
class SizeGroups:
    """One batch in parts of alike sizes, each a :class:`Batch` padded to its own largest
    structure: a few large structures no longer pad every structure of the batch to their
    size, which the pair terms (attention, radial profiles) pay for quadratically.

    Attributes:
        parts: the parts, each of some of the batch's structures.
        owner: (B,) int64, the structure (position in the batch) of each sequence, in the
            order of the parts' sequences one after another, the order a model's outputs
            for the parts come in.
    """

    parts: tuple[Batch, ...]
    owner: torch.Tensor

    @classmethod
    def of(cls, parts: Sequence[tuple[np.ndarray, Batch]]) -> SizeGroups:
        """From each part's structures (their positions in the batch) and its batch."""
        import torch

        return cls(
            parts=tuple(batch for _, batch in parts),
            owner=torch.cat([torch.from_numpy(np.asarray(members))[batch.owner] for members, batch in parts]),
        )

    @property
    def weight(self) -> torch.Tensor:
        """(B,) float32, each sequence's weight in its structure's average, as in :class:`Batch`."""
        import torch

        return torch.cat([part.weight for part in self.parts])

    def to(self, device) -> SizeGroups:
        return SizeGroups(tuple(part.to(device) for part in self.parts), self.owner.to(device))


def collate(
    structures: Sequence[EncodedStructure], frames: str = "all", rng: np.random.Generator | None = None
) -> Batch:
    """Pad to the largest structure of the batch; memory grows with the atoms present.

    ``frames="all"`` gives one sequence per distinct frame, with the weight of the frames
    it stands for (:attr:`EncodedStructure.distinct_frames`; for weighted averaging),
    ``"random"`` one frame per structure drawn with the frames' weights (training).
    """
    import torch

    rng = rng or np.random.default_rng()
    chosen = []  # per structure: its frames' weights in the batch, their rows, and each atom's row among them
    for item in structures:
        if frames == "random":
            frame = int(rng.choice(item.n_frames, p=item.weights))
            used, local = np.unique(item.row_index[frame], return_inverse=True)
            chosen.append((np.ones(1), item.rows[used], local.reshape(1, -1)))
        else:  # a frame that repeats another's rows is the same input: once, with both weights
            distinct, weights = item.distinct_frames
            chosen.append((weights, item.rows, item.row_index[distinct]))
    n_sequences = sum(len(frame_weights) for frame_weights, _, _ in chosen)
    n_max = max(item.n_atoms for item in structures)
    row_of = np.zeros((n_sequences, n_max), dtype=np.int64)
    numbers = np.zeros((n_sequences, n_max), dtype=np.int64)
    mask = np.zeros((n_sequences, n_max), dtype=bool)
    n_copies = max(item.n_copies for item in structures)
    radial = np.zeros((len(structures), n_max, n_max, n_copies, len(RADIAL_CENTRES)), dtype=np.float32)
    copies = np.zeros((len(structures), n_copies), dtype=bool)
    owner, weight, row_structure = [], [], []
    sequence = offset = 0
    for k, (item, (frame_weights, rows, local)) in enumerate(zip(structures, chosen)):
        m, f = item.n_atoms, len(frame_weights)
        row_of[sequence : sequence + f, :m] = offset + local
        numbers[sequence : sequence + f, :m] = item.numbers
        mask[sequence : sequence + f, :m] = True
        radial[k, :m, :m, : item.n_copies] = item.radial
        copies[k, : item.n_copies] = True
        owner.extend([k] * f)
        weight.extend(frame_weights)
        row_structure.extend([k] * len(rows))
        sequence, offset = sequence + f, offset + len(rows)
    return Batch(
        rows=torch.from_numpy(np.concatenate([rows for _, rows, _ in chosen])),
        row_structure=torch.tensor(row_structure),
        row_of=torch.from_numpy(row_of),
        numbers=torch.from_numpy(numbers),
        mask=torch.from_numpy(mask),
        ita_numbers=torch.tensor([item.group for item in structures]),
        lattice=torch.from_numpy(np.stack([item.lattice for item in structures])),
        radial=torch.from_numpy(radial),
        copies=torch.from_numpy(copies),
        owner=torch.tensor(owner),
        weight=torch.tensor(weight, dtype=torch.float32),
    )


def as_cell(structure: Any, label: str = "") -> Cell:
    """A :class:`basisdb.Cell` of a pymatgen ``Structure``, an ASE ``Atoms``, a basisdb
    ``Cell``, CIF text or the path of a structure file of any format, as the core reads them
    (:meth:`basisdb.Cell.from_any`: CIF by the core's reader, as the service reads it, any
    other file by :func:`basisdb.read_structure_file`); a path's label is its file name
    without the suffix."""
    return Cell.from_any(structure, label=label)


def read_structure_files(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """(label, path) pairs in the order given; files are read when encoded
    (:func:`as_cell`), so that an unreadable one is reported with its name like any other
    rejection.  A label is the file name without its suffix, or the whole name where two
    files would share one (``a.cif`` and ``a.vasp``)."""
    paths = [Path(path) for path in paths]
    stems: dict[str, int] = {}
    for path in paths:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    return [(path.stem if stems[path.stem] == 1 else path.name, path) for path in paths]


def read_structure_directory(
    directory: str | Path, *, require_targets: bool = True
) -> tuple[list[tuple[str, Any]], dict[str, float]]:
    """A folder of structures: (label, path) pairs and the known target values by label.

    With ``id_prop.csv`` (a CGCNN-style folder: rows ``material_id,value``, an optional
    header), its rows in order, each read from ``<material_id>.cif`` or else the one file
    ``<material_id>.*`` (a POSCAR, an extxyz, ...).  Without it, every file of the folder in
    name order (hidden files excluded) and no targets; with ``require_targets``, a
    :class:`~basisdb.model.datasets.DatasetError` instead (training needs the values).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory} is not a folder")
    table = directory / "id_prop.csv"
    if not table.is_file():
        if require_targets:
            raise DatasetError(f"{directory} has no id_prop.csv (rows: material_id,value)")
        files = sorted(p for p in directory.iterdir() if not p.name.startswith(".") and p.is_file())
        return read_structure_files(files), {}
    targets: dict[str, float] = {}
    with open(table, newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].startswith("#"):
                continue
            try:
                targets[row[0].strip()] = float(row[1])
            except (IndexError, ValueError):
                if line_number == 1:
                    continue  # a header line
                raise DatasetError(f"{table}:{line_number}: expected 'material_id,value', got {row}") from None
    structures = [(material_id, _structure_file(directory, material_id)) for material_id in targets]
    return structures, targets


def _structure_file(directory: Path, material_id: str) -> Path:
    """``<id>.cif`` if present, else the one other file ``<id>.*``; the CIF's path (missing,
    reported when read) when there is none or several."""
    cif = directory / f"{material_id}.cif"
    if cif.is_file():
        return cif
    others = [p for p in directory.glob(f"{glob.escape(material_id)}.*") if p.is_file() and p.name != "id_prop.csv"]
    return others[0] if len(others) == 1 else cif


if __name__ == "__main__":  # `basisdb data fetch | list`, whose command line lives in .datasets
    from basisdb import run_command

    from .datasets import main

    sys.exit(run_command(main))
