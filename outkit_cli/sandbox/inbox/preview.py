"""A template's parts rendered with given locals, each part on its own (the template editor).

The same render processes the lifecycle uses (`sandbox.render_pool`: Handlebars, CSS inlined,
bounded in time, memory and output), so what the editor shows is what a message would get
and a hostile template typed into the editor cannot stall the sandbox; a part that fails
carries its `RenderError` text (which names the part and the line, or the limit) instead of
stopping the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outkit_cli.sandbox.errors import RenderError
from outkit_cli.sandbox.render_pool import RenderPool
from outkit_cli.sandbox.templates import Project, Template


@dataclass
class Part:
    name: str  # "subject", "html" or "text"
    value: str | None = None
    error: str | None = None


def default_locals(project: Project, template: Template) -> dict[str, Any]:
    """The locals a message gets before its own `data`: the project's, then the template's."""
    return {**project.data, **template.data}


def render_parts(
    renderer: RenderPool, project: Project, template: Template, data: dict[str, Any]
) -> list[Part]:
    """Subject (email), HTML with its CSS inlined (email) and text, in that order.

    A part the template does not have is left out. Errors: none raised; a failing part,
    a template whose files did not load, or a project.json that did not parse is reported
    in `Part.error`.
    """
    local = {**default_locals(project, template), **data}
    broken = project.error or template.error
    wanted: list[tuple[str, str | None, bool]] = []
    if template.type == "email":
        wanted.append(("subject", template.subject, False))
        wanted.append(("html", template.html, True))
    wanted.append(("text", template.text, False))
    parts = []
    for name, source, html in wanted:
        if source is None and not broken:
            continue
        part = Part(name)
        if broken:
            part.error = broken
        else:
            try:
                # named as a message's render error names them: the template's file
                what = (f"{template.file_name('meta')} subject" if name == "subject"
                        else template.file_name(name))  # fmt: skip
                job_part = {"name": name, "source": source or "", "html": html, "what": what,
                            "css": template.css if html else None}  # fmt: skip
                part.value = renderer.render({"data": local, "parts": [job_part]})[name]
            except RenderError as exc:
                part.error = str(exc)
            except RuntimeError as exc:  # no render process could be started or reached
                part.error = f"{name}: the sandbox could not render it ({exc})"
        parts.append(part)
    return parts
