"""Number ranges such as ``"1-30,525"``: the grammar of ``basisdb build --settings``, of the
service's ``groups=`` and of the model commands' ``--groups``."""

from __future__ import annotations

__all__ = ["parse_number_ranges"]


def parse_number_ranges(
    spec: str, *, lower: int = 1, upper: int | None = None, out_of_range: type[ValueError] = ValueError
) -> list[int]:
    """Sorted distinct integers from text such as ``"1-30,525"`` (inclusive ranges), each
    in ``lower``-``upper``.

    Every end is checked before any range is expanded, so that ``"1-9999999999"`` costs
    nothing; a reversed range such as ``"5-1"`` is an error, not an empty selection.
    Raises ``out_of_range`` for an end outside the bounds, ValueError on anything else.

    >>> parse_number_ranges("3-5,1,4")
    [1, 3, 4, 5]
    """
    bounds = f"{lower}-{upper}" if upper is not None else f"{lower} or more"
    ranges = []
    for part in spec.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()) or len(part) > 40:
            raise ValueError(
                f"cannot read {part.strip()[:40]!r} in {spec[:80]!r}: use numbers and ranges such as '1-30,525'"
            )
        first, last = int(low), int(high or low)
        for end in (first, last):
            if end < lower or (upper is not None and end > upper):
                raise out_of_range(f"{end} in {part.strip()!r} is outside {bounds}")
        if last < first:
            raise ValueError(f"the range {part.strip()!r} is empty; write it low-high, e.g. '{last}-{first}'")
        ranges.append((first, last))
    return sorted(set().union(*(range(first, last + 1) for first, last in ranges)))
