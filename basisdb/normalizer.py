"""The Euclidean normalizer of a space group for one crystal's own lattice (ITA Vol. A, 3.5).

spglib standardizes a crystal into the default setting of its type, but the result is unique
only up to an affine map ``n = (W, w)``, ``x -> W x + w``, that maps the crystal's lattice
onto itself as an isometry and the group onto itself: an element of the Euclidean normalizer
``N_E(G)`` of the group for the crystal's metric.  Rock salt can come back with Cl at the
origin (a translation), wurtzite upside down (a 2-fold axis perpendicular to c), an
orthorhombic cell with a = b with x and y exchanged (an element that only this metric has).
A G-invariant function ``f`` takes the same value on ``n x`` and ``g n x`` for every ``g`` in
G, so the distinct descriptions are the right cosets ``G n``; averaging over one
representative of each makes ``f`` independent of spglib's choice.

Everything here is exact: W is a rational matrix (integer numerators over one denominator),
w is on the 1/24 grid, and membership in G is an integer table lookup.  The lattice's
isometries come from spglib (a single atom in the primitive cell, with the structure's own
tolerance), so a metric that is special within that tolerance contributes its extra elements.

Along polar directions (those every rotation of G fixes) the origin is free to move
continuously; those translations are left out here and fixed per structure in
:mod:`basisdb.frames`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np
import spglib

from .errors import StructureError
from .settings import TRANSLATION_DENOMINATOR, Setting, get_setting, quiet_spglib

__all__ = ["NormalizerCosets", "euclidean_normalizer", "enantiomorphic_partner", "polar_axes", "primitive_basis"]

_D = TRANSLATION_DENOMINATOR
_PLACES = np.array([_D * _D, _D, 1])


@dataclass(frozen=True, eq=False)
class NormalizerCosets:
    """Representatives ``(W, w)`` of the cosets ``G n`` of a group in its Euclidean
    normalizer for one lattice metric; the continuous translations along polar directions
    are left out.

    Attributes:
        setting: the setting of G; W and w act on fractional coordinates (column vectors) of
            its conventional cell.
        linear: (K, 3, 3) int64 numerators of W over ``denominator``; ``linear[0]`` is the
            identity.
        denominator: positive int, the common denominator of ``linear`` (1 unless a centred
            lattice has isometries that are not integral in the conventional basis).
        translations: (K, 3) int64 numerators of w over ``TRANSLATION_DENOMINATOR``, in
            [0, 24), zero along polar directions.
        polar: (3,) bool, the axes of continuous origin freedom (:func:`polar_axes`).
        proper: whether only rotations (det W = +1) were admitted.
    """

    setting: Setting
    linear: np.ndarray = field(repr=False)
    denominator: int
    translations: np.ndarray = field(repr=False)
    polar: np.ndarray = field(repr=False)
    proper: bool

    @property
    def index(self) -> int:
        """Number of cosets, K."""
        return int(self.linear.shape[0])

    @property
    def linear_float(self) -> np.ndarray:
        """(K, 3, 3) float64 W, for evaluation only."""
        return self.linear / self.denominator

    def apply(self, positions: np.ndarray) -> np.ndarray:
        """(K, N, 3) float64: ``W x + w`` for every representative and every position."""
        x = np.asarray(positions, dtype=np.float64)
        return np.einsum("kij,nj->kni", self.linear_float, x) + (self.translations / _D)[:, None, :]


def polar_axes(setting: Setting) -> np.ndarray:
    """(3,) bool: the axes that every rotation of the group leaves fixed (R e_j = e_j),
    along which the origin may move continuously."""
    identity = np.eye(3, dtype=np.int64)
    rotations = setting.rotations.astype(np.int64)
    polar = (rotations == identity).all(axis=(0, 1))
    # In every setting of spglib's table the fixed subspace is spanned by coordinate axes;
    # check it rather than assume it.
    rank = np.linalg.matrix_rank(np.concatenate(list(identity - rotations)))
    if 3 - rank != polar.sum():
        raise StructureError(f"the polar subspace of {setting.hall_symbol} is not along coordinate axes")
    return polar


@cache
def _centring(hall: int) -> np.ndarray:
    """(C, 3) int64: the centring translations of a setting (in 24ths), zero included."""
    setting = get_setting(hall=hall)
    pure = (setting.rotations == np.eye(3, dtype=np.int8)).all(axis=(1, 2))
    return setting.translations[pure]


@cache
def primitive_basis(hall: int) -> np.ndarray:
    """(3, 3) int64: rows are a basis of the setting's lattice (conventional cell plus
    centring translations), as numerators over 24 of conventional fractional coordinates.

    The first triple of lattice vectors (centring vectors and unit vectors) whose volume is
    the conventional volume over the number of centring translations."""
    centring = _centring(hall)
    candidates = np.concatenate([centring[(centring != 0).any(axis=1)], _D * np.eye(3, dtype=np.int64)])
    volume = _D**3 // len(centring)
    for triple in itertools.combinations(range(len(candidates)), 3):
        basis = candidates[list(triple)]
        if abs(round(np.linalg.det(basis))) == volume:  # exact: entries below 25, |det| < 2^24
            return basis if round(np.linalg.det(basis)) > 0 else basis[[1, 0, 2]]
    raise StructureError(f"no primitive basis found for Hall number {hall}")  # pragma: no cover


def _adjugate(matrix: np.ndarray) -> np.ndarray:
    """Adjugate of an integer 3x3 matrix, exactly: adj(A) A = det(A) I."""
    a = matrix
    cofactors = np.array(
        [
            [
                a[(i + 1) % 3, (j + 1) % 3] * a[(i + 2) % 3, (j + 2) % 3]
                - a[(i + 1) % 3, (j + 2) % 3] * a[(i + 2) % 3, (j + 1) % 3]
                for j in range(3)
            ]
            for i in range(3)
        ],
        dtype=np.int64,
    )
    return cofactors.T


def _lattice_isometries(setting: Setting, lattice: np.ndarray, symprec: float) -> tuple[np.ndarray, int]:
    """The point group of the setting's lattice with metric ``lattice`` (rows a, b, c of the
    conventional cell, Angstrom), as integer numerators (n, 3, 3) over one denominator,
    acting on conventional fractional coordinates."""
    basis = primitive_basis(setting.hall_number)  # rows: primitive vectors, in 24ths
    primitive_lattice = (basis / _D) @ np.asarray(lattice, dtype=np.float64)
    found = quiet_spglib(spglib.get_symmetry, (primitive_lattice, [[0.0, 0.0, 0.0]], [1]), symprec=symprec)
    if found is None:  # pragma: no cover - a single atom always has its lattice's symmetry
        raise StructureError("spglib found no lattice symmetry")
    rotations = np.asarray(found["rotations"], dtype=np.int64)
    # x_conventional = B^T y_primitive, so W = B^T M B^-T = Bn^T M adj(Bn^T) / det(Bn).
    transpose = basis.T
    numerators = np.einsum("ij,njk,kl->nil", transpose, rotations, _adjugate(transpose))
    denominator = int(round(np.linalg.det(transpose)))
    common = int(np.gcd.reduce(np.append(numerators.ravel(), denominator)))
    return numerators // common, denominator // common


@cache
def _operation_table(hall: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[bytes, int]]:
    """Integer forms of a setting's operations: rotations (n, 3, 3) int64, the class of each
    rotation, a membership table over (class, translation) keys, and class by rotation bytes."""
    setting = get_setting(hall=hall)
    rotations = setting.rotations.astype(np.int64)
    classes: dict[bytes, int] = {}
    rotation_class = np.array([classes.setdefault(r.tobytes(), len(classes)) for r in rotations])
    table = np.zeros(len(classes) * _D**3, dtype=bool)
    table[rotation_class * _D**3 + setting.translations @ _PLACES] = True
    return rotations, rotation_class, table, classes


@cache
def _generators(hall: int) -> tuple[int, ...]:
    """Indices of operations that, with the lattice translations, generate the group."""
    setting = get_setting(hall=hall)
    ops = [(r.astype(np.int64), t.astype(np.int64)) for r, t in zip(setting.rotations, setting.translations)]
    key = lambda r, t: (r.tobytes(), tuple(t % _D))  # noqa: E731
    generated = {key(np.eye(3, dtype=np.int64), np.zeros(3, dtype=np.int64))}
    generators: list[int] = []
    for index, (r, t) in enumerate(ops):
        if key(r, t) in generated:
            continue
        generators.append(index)
        frontier = [(np.eye(3, dtype=np.int64), np.zeros(3, dtype=np.int64))]
        members = {key(*frontier[0]): frontier[0]}
        while frontier:  # closure under the generators so far
            nxt = []
            for a_r, a_t in frontier:
                for g in generators:
                    g_r, g_t = ops[g]
                    product = (g_r @ a_r, (g_r @ a_t + g_t) % _D)
                    k = key(*product)
                    if k not in members:
                        members[k] = product
                        nxt.append(product)
            frontier = nxt
        generated = set(members)
    return tuple(i for i in generators if not (ops[i][0] == np.eye(3, dtype=np.int64)).all())


def _translation_solutions(
    hall: int, w_linear: np.ndarray, w_inverse: np.ndarray, denominator: int, polar: np.ndarray
) -> np.ndarray | None:
    """(S, 3) int64 translations w (24ths, zero along polar axes) with (W, w) G (W, w)^-1 = G,
    or None when W does not normalize the point group or no w exists."""
    rotations, rotation_class, table, classes = _operation_table(hall)
    setting = get_setting(hall=hall)
    d2 = denominator * denominator
    axes = [np.arange(_D) if not p else np.array([0]) for p in polar]
    candidates = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    ok = np.ones(len(candidates), dtype=bool)
    identity = np.eye(3, dtype=np.int64)
    for g in _generators(hall):
        conjugate = w_linear @ rotations[g] @ w_inverse
        if (conjugate % d2).any():
            return None
        conjugate //= d2
        target = classes.get(conjugate.tobytes())
        if target is None:
            return None
        moved_translation = w_linear @ setting.translations[g]
        if (moved_translation % denominator).any():
            return None
        # (W, w)(R, t)(W, w)^-1 = (W R W^-1, W t + (I - W R W^-1) w)
        moved = (moved_translation // denominator + candidates @ (identity - conjugate).T) % _D
        ok &= table[target * _D**3 + moved @ _PLACES]
        if not ok.any():
            return None
    return candidates[ok]


@lru_cache(maxsize=4096)
def _cosets(hall: int, isometries: bytes, denominator: int, proper: bool) -> NormalizerCosets:
    setting = get_setting(hall=hall)
    polar = polar_axes(setting)
    linear = np.frombuffer(isometries, dtype=np.int64).reshape(-1, 3, 3)
    rotations, *_ = _operation_table(hall)
    determinants = np.rint(np.linalg.det(linear / denominator)).astype(int)
    # Proper elements first, the identity first of all, so each coset gets a rotation as
    # representative when it has one (the proper and E(3) frames then agree wherever G
    # itself holds an improper operation).
    identity = denominator * np.eye(3, dtype=np.int64)
    order = sorted(
        range(len(linear)),
        key=lambda i: (-determinants[i], not np.array_equal(linear[i], identity), linear[i].tobytes()),
    )
    centring = _centring(hall)
    covered: set[bytes] = set()
    chosen_linear, chosen_translations = [], []
    for i in order:
        w_linear = linear[i]
        if proper and determinants[i] < 0:
            continue
        if w_linear.tobytes() in covered:
            continue
        # The coset P W: (R, t)(W, w) has linear part R W, and (W, w) normalizes G exactly
        # when some (R W, w') does, so one member of the coset answers for all.
        covered.update((r @ w_linear).tobytes() for r in rotations)
        solutions = _translation_solutions(
            hall, w_linear, _inverse_numerators(w_linear, denominator), denominator, polar
        )
        if solutions is None:
            continue
        # w modulo the lattice (centring included): one per class
        classes = ((solutions[:, None, :] + centring[None]) % _D) @ _PLACES
        _, first = np.unique(classes.min(axis=1), return_index=True)
        for w in solutions[np.sort(first)]:
            chosen_linear.append(w_linear)
            chosen_translations.append(w)
    linear_out = np.stack(chosen_linear)
    translations_out = np.stack(chosen_translations)
    for array in (linear_out, translations_out):
        array.flags.writeable = False
    return NormalizerCosets(setting, linear_out, denominator, translations_out, polar, proper)


def _inverse_numerators(w_linear: np.ndarray, denominator: int) -> np.ndarray:
    """Numerators over ``denominator`` of W^-1, for W = w_linear / denominator (det W = +-1):
    W^-1 = adj(W) / det(W) = adj(w_linear) denominator^2 / det(w_linear)."""
    determinant = int(np.rint(np.linalg.det(w_linear)))  # +-denominator^3, exact in float
    scaled = _adjugate(w_linear) * denominator * denominator
    if (scaled % determinant).any():  # pragma: no cover - a lattice isometry is unimodular
        raise StructureError("a lattice isometry is not invertible over the lattice")
    return scaled // determinant


def euclidean_normalizer(
    setting: Setting, lattice: np.ndarray, *, symprec: float, proper: bool = False
) -> NormalizerCosets:
    """Coset representatives of ``setting``'s group in its Euclidean normalizer for the
    metric of ``lattice`` ((3, 3), rows a, b, c of the conventional cell in Angstrom); with
    ``proper``, rotations only.  Cached per (setting, lattice point group)."""
    linear, denominator = _lattice_isometries(setting, lattice, symprec)
    order = np.lexsort(linear.reshape(len(linear), -1).T[::-1])
    return _cosets(setting.hall_number, np.ascontiguousarray(linear[order]).tobytes(), denominator, bool(proper))


@cache
def enantiomorphic_partner(group: int) -> int:
    """The ITA number of the mirror image's type: the other member of an enantiomorphic
    pair (P4_1 <-> P4_3, P3_121 <-> P3_221, ...), else ``group`` itself.

    Derived, not tabulated: the inverse image x -> -x conjugates (R, t) to (R, -t), and
    spglib names the type of that set of operations."""
    setting = get_setting(group)  # validates group
    mirrored = quiet_spglib(
        spglib.get_spacegroup_type_from_symmetry,
        setting.rotations.astype(np.intc),
        (-setting.translations % _D) / _D,
        None,
        1e-5,
    )
    return int(mirrored.number)
