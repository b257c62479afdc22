"""Request bodies read within bounds, whatever they hold.

A body within ``--max-body-bytes`` can still hold millions of invalid items, and a validator
that reports every one of them builds, sends and serializes an error list without bound (a
0.6 MB body of empty objects once gave a 16 MiB answer).  So a JSON body is read in three
steps, each bounded before it runs:

1. :class:`BodyShape` counts its brackets and commas (in C) against the most that a valid
   request can hold: more is 413 before anything is parsed;
2. :func:`read_json` parses it with pydantic-core's parser (the one pydantic itself uses), so
   the objects made are at most a few per counted separator;
3. :func:`validate` checks it against the request model in pieces: unknown keys by set
   difference, each list field in chunks.  The first :data:`MAX_ISSUES` problems are kept,
   each cut to a fixed size, and the rest only counted: :class:`InvalidRequest` carries both.

A route checks the lengths of its lists against its own limits (413) between steps 2 and 3.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from functools import cache
from itertools import islice
from typing import Any, TypeVar

from fastapi import HTTPException
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import from_json

__all__ = ["MAX_ISSUES", "InvalidRequest", "BodyShape", "read_json", "validate", "issue", "issues_of"]

M = TypeVar("M", bound=BaseModel)

MAX_ISSUES = 20  # problems listed in one 422; the rest are counted
_MAX_TEXT = 200  # characters of a message
_MAX_KEY = 64  # characters of a key named in a location
_CHUNK = 1024  # list items validated at once: at most a few thousand errors in memory


class InvalidRequest(Exception):
    """A request that cannot be read: its first problems (at most :data:`MAX_ISSUES`, each
    ``{"loc", "msg", "type"}`` of bounded size) and how many it has in all.  Small and
    picklable, so that it may cross from a worker process."""

    def __init__(self, issues: list[dict], count: int):
        super().__init__(issues, count)
        self.issues, self.count = issues, count


def issue(loc: tuple | list, msg: str, kind: str) -> dict:
    """One problem, cut to a fixed size: a client's key is echoed at most :data:`_MAX_KEY`
    characters long."""
    parts = [part if isinstance(part, int) else _cut(str(part), _MAX_KEY) for part in list(loc)[:8]]
    return {"loc": parts, "msg": _cut(msg, _MAX_TEXT), "type": _cut(kind, _MAX_KEY)}


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def issues_of(error: ValidationError, prefix: tuple = (), offset: int = 0, limit: int = MAX_ISSUES) -> list[dict]:
    """The first ``limit`` problems of a pydantic error, located under ``prefix`` (with
    ``offset`` added to the first index: the start of a chunk).  Never the input itself:
    echoing NaN or infinity fails to serialize, and a client's data is not ours to repeat."""
    found = error.errors(include_url=False, include_context=False, include_input=False)[:limit]
    issues = []
    for entry in found:
        loc = entry["loc"]
        if offset and loc and isinstance(loc[0], int):
            loc = (loc[0] + offset, *loc[1:])
        issues.append(issue((*prefix, *loc), entry["msg"], entry["type"]))
    return issues


@dataclass(frozen=True)
class BodyShape:
    """The most arrays and objects (``[`` and ``{``) and the most commas that a valid body
    of a route holds: counted in C before parsing, they bound what parsing can make.  Text
    inside strings counts too, which only makes the bound safe; ``text_allowance`` leaves room
    for the commas and brackets of free text such as a CIF."""

    containers: int
    separators: int
    limit: str  # what bounds them, for the message: "--max-positions 100000"
    hint: str  # what to do instead: "split the request"

    def check(self, body: bytes) -> None:
        containers = body.count(b"[") + body.count(b"{")
        separators = body.count(b",")
        if containers > self.containers or separators > self.separators:
            raise HTTPException(
                413,
                f"the body holds {containers} arrays and objects and {separators} commas, more than a request "
                f"within {self.limit} can ({self.containers} and {self.separators}); {self.hint}",
            )


def read_json(body: bytes, shape: BodyShape) -> Any:
    """The parsed body (NaN and infinity read as numbers, for the model to refuse by name),
    after ``shape`` has bounded it; a body that is not JSON is an :class:`InvalidRequest`."""
    shape.check(body)
    try:
        return from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        raise InvalidRequest([issue([], f"Invalid JSON: {exc}", "json_invalid")], 1) from None


def validate(model: type[M], data: Any, *, strict: bool = True) -> M:
    """``data`` as ``model``, or an :class:`InvalidRequest` with at most :data:`MAX_ISSUES`
    problems and the count of all of them.

    ``model`` must forbid unknown keys (every request model does).  Its list fields, and
    those of the models it nests, are validated a chunk at a time first, and replaced by an
    empty list where invalid, so that the whole model is validated only once nothing left in
    it can fail more than a few times.
    """
    found = _Found()
    prepared = _prepare(model, data, (), found, strict)
    try:
        result = model.model_validate(prepared, strict=strict)
    except ValidationError as exc:
        found.add(exc)
    if found.count:
        raise InvalidRequest(found.issues, found.count)
    return result


class _Found:
    """The first problems and the count of all."""

    def __init__(self) -> None:
        self.issues: list[dict] = []
        self.count = 0

    @property
    def room(self) -> int:
        return MAX_ISSUES - len(self.issues)

    def add(self, error: ValidationError, prefix: tuple = (), offset: int = 0) -> None:
        self.count += error.error_count()
        if self.room > 0:  # only then are the errors made into Python objects
            self.issues += issues_of(error, prefix, offset, self.room)


def _prepare(model: type[BaseModel], data: Any, loc: tuple, found: _Found, strict: bool) -> Any:
    """``data`` without its unknown keys (one problem each) and with every list field checked
    in chunks and emptied where invalid; nested models in turn."""
    if not isinstance(data, dict):
        return data  # one problem, which the model reports
    fields = model.model_fields
    assert model.model_config.get("extra") == "forbid", f"{model.__name__} must forbid unknown keys"
    unknown = data.keys() - fields.keys()
    if unknown:
        found.count += len(unknown)
        for key in islice((key for key in data if key in unknown), max(0, found.room)):
            found.issues.append(issue((*loc, key), "Extra inputs are not permitted", "extra_forbidden"))
    prepared = {name: data[name] for name in fields if name in data}
    for name, value in prepared.items():
        items = _list_items(model, name)
        if items is not None and isinstance(value, list):
            before = found.count
            for start in range(0, len(value), _CHUNK):
                try:
                    items.validate_python(value[start : start + _CHUNK], strict=strict)
                except ValidationError as exc:
                    found.add(exc, (*loc, name), start)
            if found.count > before:
                prepared[name] = []  # reported: the whole model need not see it again
        elif (nested := _nested_model(model, name)) is not None and isinstance(value, dict):
            prepared[name] = _prepare(nested, value, (*loc, name), found, strict)
    return prepared


@cache
def _list_items(model: type[BaseModel], name: str) -> TypeAdapter | None:
    """A validator of a chunk of a list field (``list[...]``), or None for other fields."""
    annotation = model.model_fields[name].annotation
    return TypeAdapter(annotation) if typing.get_origin(annotation) is list else None


@cache
def _nested_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The model of a field that holds one (``Model`` or ``Model | None``), else None."""
    annotation = model.model_fields[name].annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


# A Hermann-Mauguin symbol is short ("P 1 21/c 1" is among the longest spellings); a longer
# string is refused before it is compared with every known symbol.
MAX_GROUP_TEXT = 40
GROUP_DESCRIPTION = (
    "ITA space-group number 1-230, or a Hermann-Mauguin symbol in any spelling the Python API reads "
    "('Fd-3m', 'P2_1/c', 'P21/c', 'P 1 21/c 1', 'R-3m:H')"
)


def group_of(group: int | str, *, from_text: bool = False) -> int:
    """The ITA number of ``group``, a number or a Hermann-Mauguin symbol (:func:`basisdb.group_number`).
    From a path or a query (``from_text``), which hold nothing but text, a string of digits is
    the number it spells, and U+2215, the stand-in of an escaped slash
    (:class:`~basisdb.service.conventions.HttpConventions`), is a slash; in a body, as in the
    Python API, a number is a JSON number.  An unknown group raises
    :class:`basisdb.InvalidGroupError` (404), with the closest known symbols."""
    from basisdb import InvalidGroupError, group_number

    if isinstance(group, str):
        if len(group) > MAX_GROUP_TEXT:
            raise InvalidGroupError(
                f"a space-group symbol has at most {MAX_GROUP_TEXT} characters, got {len(group)}: "
                "give a Hermann-Mauguin symbol such as 'Fd-3m' or the ITA number"
            )
        if from_text:
            group = group.strip().replace("\u2215", "/")
            group = int(group) if group.isdigit() and group.isascii() else group
    return group_number(group)
