"""A dataset made ready for every method of an evaluation at once: each representation (CFT
encodings, CGCNN graphs, Magpie and structure features) computed once, rows aligned, so that
all methods train and test on exactly the same structures."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from basisdb import get_setting

from .baselines import crystal_graph, magpie_features, structure_features
from .data import StructureFeaturizer
from .encoding_cache import EncodingCache

__all__ = ["Prepared", "prepare"]


@dataclass(frozen=True, eq=False)
class Prepared:
    """A dataset ready for every method, rows aligned.

    Attributes:
        ids: (n,) material ids.  values: (n,) float64 targets; groups: (n,) int64 space groups
        (spglib, at the featurizer's symprec); items: CFT encodings; graphs: CGCNN graphs;
        composition: (n, 132) Magpie features; structure: (n, 5)
        :func:`basisdb.model.baselines.structure_features`; timings: seconds spent preparing each
        representation; unit, reference: the target's unit and the dataset's source.
    """

    ids: list[str]
    values: np.ndarray
    groups: np.ndarray
    items: list
    graphs: list
    composition: np.ndarray
    structure: np.ndarray
    timings: dict[str, float]
    unit: str = ""
    reference: str = ""

    def subset(self, rows: np.ndarray) -> Prepared:
        """The rows ``rows`` (indices or a boolean mask) of every representation."""
        rows = np.arange(len(self.values))[rows]
        return Prepared(
            ids=[self.ids[i] for i in rows],
            values=self.values[rows],
            groups=self.groups[rows],
            items=[self.items[i] for i in rows],
            graphs=[self.graphs[i] for i in rows],
            composition=self.composition[rows],
            structure=self.structure[rows],
            timings=self.timings,
            unit=self.unit,
            reference=self.reference,
        )


def prepare(
    dataset, featurizer: StructureFeaturizer, report=sys.stderr, cache: EncodingCache | None = None, workers: int = 1
) -> tuple[Prepared, list[tuple[str, str]]]:
    """Encode every structure (read back from ``cache`` where it holds them, in ``workers``
    processes otherwise); those the featurizer rejects are returned with the reason (and
    reported), and no method sees them, so that all methods share the same rows."""
    began = time.perf_counter()
    items, rejected = featurizer.encode_many(
        zip(dataset.ids, dataset.structures), report=report, cache=cache, workers=workers
    )
    encode_seconds = time.perf_counter() - began
    kept = {item.label: i for i, item in enumerate(items)}
    rows = np.array([i for i, material in enumerate(dataset.ids) if material in kept], dtype=np.int64)
    dataset = dataset.subset(rows)
    began = time.perf_counter()
    graphs = [crystal_graph(structure) for structure in dataset.structures]
    graph_seconds = time.perf_counter() - began
    began = time.perf_counter()
    composition = magpie_features(dataset.formulas)
    magpie_seconds = time.perf_counter() - began
    began = time.perf_counter()
    structure = structure_features(
        dataset.structures, [item.group for item in items], [_primitive_sites(item) for item in items]
    )
    prepared = Prepared(
        ids=dataset.ids,
        values=dataset.values,
        groups=np.array([item.group for item in items], dtype=np.int64),
        items=items,
        graphs=graphs,
        composition=composition,
        structure=structure,
        timings={
            "cft_encoding": encode_seconds,
            "cgcnn_graphs": graph_seconds,
            "magpie_features": magpie_seconds,
            "structure_features": time.perf_counter() - began,
        },
        unit=dataset.unit,
        reference=dataset.reference,
    )
    return prepared, rejected


def _primitive_sites(item) -> int:
    """Sites in the primitive cell: the standardized cell's (the atoms kept times their
    centring copies) over its lattice points (the setting's operations per point-group
    operation)."""
    setting = get_setting(hall=item.hall_number)
    return item.n_atoms * item.n_copies * setting.point_group_order // setting.n_operations
