"""A batch row on top of the command's options: the row wins, field by field.

When a row picks one form of a choice (a stored template, an inline template or ready
bodies; `project` or `project_id`; `backend` or `backend_id`), the command's value for the
other forms is dropped, so a row can override the kind of content, not just its value.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from outkit_cli.errors import UsageError
from outkit_cli.message import DEFAULT_TYPE, apply_defaults, check_shape, check_values

# Fields that are alternatives to each other: setting one in a row clears the others.
ALTERNATIVES: tuple[tuple[str, ...], ...] = (
    (
        "template",
        "template_id",
        "html_template_body",
        "text_template_body",
        "html_body",
        "text_body",
    ),
    ("project", "project_id"),
    ("backend", "backend_id"),
)


def merge_row(
    base: Mapping[str, Any], row: Mapping[str, Any], profile_defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """The message for one row, validated (UsageError names the problem)."""
    msg = dict(base)
    for group in ALTERNATIVES:
        if any(row.get(name) for name in group):
            for name in group:
                msg.pop(name, None)
    if row.get("html_template_body") is None and ("html_body" in row or "text_body" in row):
        msg.pop("template_styles", None)
    for name, value in row.items():
        if name != "data":
            msg[name] = value  # types were checked when the row was read
    data = {**(base.get("data") or {}), **(row.get("data") or {})}
    if data:
        msg["data"] = data
    msg.setdefault("type", DEFAULT_TYPE)
    apply_defaults(msg, profile_defaults)
    msg = {k: v for k, v in msg.items() if v is not None}
    if not str(msg.get("to") or "").strip():
        raise UsageError("the row's to is empty (and no --to gives every row one)")
    check_values(msg)
    problem = _shape_problem(msg.get("type"), frozenset(k for k, v in msg.items() if v != ""))
    if problem is not None:
        raise UsageError(problem)
    return msg


@functools.lru_cache(maxsize=256)
def _shape_problem(kind: Any, present: frozenset[str]) -> str | None:
    """check_shape's verdict for a type and a set of fields given: the rows of one batch
    come in a few shapes, so each is checked once."""
    try:
        check_shape({**dict.fromkeys(present, "x"), "type": kind})
    except UsageError as exc:
        return exc.message
    return None
