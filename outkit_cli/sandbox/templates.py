"""Projects and templates, from plain files.

Layout (the shipped demo and a user's `--templates DIR` alike)::

    DIR/<project>/project.json        optional: {"from": "...", "data": {...}}
    DIR/<project>/<template>.html     HTML part (Handlebars)
    DIR/<project>/<template>.txt      text part (Handlebars); the only part of an SMS
    DIR/<project>/<template>.css      optional: CSS inlined into the HTML part
    DIR/<project>/<template>.json     optional: {"type": "email"|"sms", "subject": "...",
                                                 "from": "...", "data": {...}}

The type is "email" unless the .json says otherwise. A user directory adds projects and
templates and replaces shipped ones of the same name (a template wholesale, all its files).
It is re-scanned on use when any file's mtime or size changed, so edits show up at once.
A file that cannot be read or parsed makes its template fail with `render_error`, naming
the file, instead of stopping the server.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outkit_cli.fields import MAX_TEMPLATE_BYTES

# Stable ids derived from names, so `project_id` / `template_id` / `backend_id` stay the
# same across restarts and data dirs.
ID_NAMESPACE = uuid.UUID("6f1d2a6e-5a0c-4d3b-9a55-0b7e8c1d2f30")

# Template files are parsed like inline templates, so they have the same size limit.
MAX_TEMPLATE = MAX_TEMPLATE_BYTES  # bytes (fields.py)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

PARTS = {".html": "html", ".txt": "text", ".css": "css", ".json": "meta"}
DEFAULT_FROM = "Outkit Sandbox <sandbox@outkit.invalid>"


def stable_id(kind: str, *names: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, ":".join((kind, *names))))


@dataclass
class Template:
    project: str
    name: str
    id: str
    type: str = "email"
    html: str | None = None
    text: str | None = None
    css: str | None = None
    subject: str | None = None
    from_: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when a file did not load; rendering reports it
    files: dict[str, str] = field(default_factory=dict)  # part -> file name

    def file_name(self, part: str) -> str:
        """`project/name.ext`, how errors name the file a part came from."""
        ext = {"html": ".html", "text": ".txt", "css": ".css", "meta": ".json"}[part]
        return f"{self.project}/{self.files.get(part, self.name + ext)}"


@dataclass
class Project:
    name: str
    id: str
    from_: str = DEFAULT_FROM
    data: dict[str, Any] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    error: str | None = None


def read_inside(root: Path, path: Path) -> str:
    """The text (UTF-8) of ``path``, a file that must resolve inside ``root``.

    A symlink under --templates DIR that leads out of it (`demo/leak.txt -> config.toml`)
    would serve that file, secrets included, as a template: it is refused, and so is
    anything but a regular file (a FIFO would block the server) or a file over
    MAX_TEMPLATE bytes. Raises ValueError saying which; OSError when it cannot be read.
    """
    real = os.path.realpath(path)
    inside = os.path.realpath(root)
    if os.path.commonpath([inside, real]) != inside:
        raise ValueError(f"{path.name} resolves outside the templates directory: refused")
    # O_NOFOLLOW: the checked path must be the file opened, not a symlink put there since
    fd = os.open(real, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        st = os.fstat(file.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        raw = file.read(MAX_TEMPLATE + 1)
    if len(raw) > MAX_TEMPLATE:
        raise ValueError(
            f"{path.name} is over the limit of {MAX_TEMPLATE:,} bytes ({MAX_TEMPLATE // 1024} KiB)"
        )
    return raw.decode("utf-8")


def _read_json_object(root: Path, path: Path) -> dict[str, Any]:
    value = json.loads(read_inside(root, path))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def checked_field(name: str, value: Any, type_: str) -> str | None:
    """A project's or template's default ``from`` or ``subject`` (``name``; None when not
    set), checked as the same field of a message of type ``type_`` ("email" or "sms") is
    (sandbox.app.parse_message: a string, one line, no control character, within its
    limits, and for an email's from an address list). Raises ValueError naming the field,
    which the caller reports with the file: the project's or template's messages end in
    ``render_error``.

    A file supplies it where a message would: a `"from"` with CRLF and `Bcc:` in
    project.json became a second address of the delivered email (attacker trial).
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f'"{name}" must be a string')
    from outkit_cli.sandbox.app import parse_message
    from outkit_cli.sandbox.errors import ApiError

    probe = {"type": type_, "to": "probe@example.com", "project": "probe", name: value}
    try:
        parse_message(json.dumps({"message": probe}).encode())
    except ApiError as exc:
        raise ValueError(f'"{name}": {exc.message.replace(f"message.{name} ", "", 1)}') from None
    return value


def _load_project(root: Path, directory: Path, base: Project | None) -> Project:
    name = directory.name
    project = Project(name=name, id=stable_id("project", name))
    if base is not None:
        project.from_, project.data = base.from_, dict(base.data)
        project.templates = dict(base.templates)
    files: dict[str, dict[str, Path]] = {}
    for entry in sorted(directory.iterdir()):
        stem, ext = os.path.splitext(entry.name)
        if entry.is_file() and ext in PARTS and not entry.name.startswith("."):
            if entry.name == "project.json":
                continue
            files.setdefault(stem, {})[PARTS[ext]] = entry
    meta_path = directory / "project.json"
    if meta_path.is_file():
        try:
            meta = _read_json_object(root, meta_path)
            # a project's sender serves email and SMS: the rules of both (not the email
            # address rule, which a template of type email adds)
            project.from_ = checked_field("from", meta.get("from"), "sms") or project.from_
            data = meta.get("data", {})
            if not isinstance(data, dict):
                raise ValueError('"data" must be an object')
            project.data = data
        except (OSError, ValueError) as exc:
            project.error = f"{meta_path}: {exc}"
    for stem, parts in files.items():
        project.templates[stem] = _load_template(root, name, stem, parts)
    return project


def _load_template(root: Path, project: str, name: str, parts: dict[str, Path]) -> Template:
    tpl = Template(project=project, name=name, id=stable_id("template", project, name))
    tpl.files = {part: path.name for part, path in parts.items()}
    try:
        for part in ("html", "text", "css"):
            if part in parts:
                setattr(tpl, part, read_inside(root, parts[part]))
        if "meta" in parts:
            meta = _read_json_object(root, parts["meta"])
            tpl.type = str(meta.get("type", "email"))
            if tpl.type not in ("email", "sms"):
                raise ValueError(f'"type" must be "email" or "sms", not {tpl.type!r}')
            subject, sender = meta.get("subject"), meta.get("from")
            tpl.subject = checked_field("subject", subject, tpl.type)
            tpl.from_ = checked_field("from", sender, tpl.type)
            data = meta.get("data", {})
            if not isinstance(data, dict):
                raise ValueError('"data" must be an object')
            tpl.data = data
    except (OSError, ValueError) as exc:
        where = ", ".join(sorted(str(p) for p in parts.values()))
        tpl.error = f"template {project}/{name} ({where}) did not load: {exc}"
    return tpl


def load_projects(directory: Path, base: dict[str, Project] | None = None) -> dict[str, Project]:
    projects = dict(base or {})
    if not directory.is_dir():
        return projects
    for entry in sorted(directory.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            projects[entry.name] = _load_project(directory, entry, projects.get(entry.name))
    return projects


def _signature(directory: Path) -> tuple[Any, ...]:
    """Names, mtimes and sizes of every file two levels down: cheap change detection."""
    sig: list[Any] = []
    try:
        with os.scandir(directory) as top:
            for proj in top:
                if not proj.is_dir():
                    continue
                st = proj.stat()
                sig.append((proj.name, "", st.st_mtime_ns, 0))
                with os.scandir(proj.path) as inner:
                    for f in inner:
                        st = f.stat()
                        sig.append((proj.name, f.name, st.st_mtime_ns, st.st_size))
    except OSError:
        return ("unreadable",)
    sig.sort()
    return tuple(sig)


class Catalog:
    """The shipped demo projects plus an optional user directory, re-read on change."""

    def __init__(self, builtin_dir: Path, user_dir: Path | None = None) -> None:
        self._builtin = load_projects(builtin_dir)
        self._user_dir = user_dir
        self._lock = threading.Lock()
        self._sig: tuple[Any, ...] | None = None
        self._projects = self._builtin

    def projects(self) -> dict[str, Project]:
        if self._user_dir is None:
            return self._projects
        sig = _signature(self._user_dir)
        if sig != self._sig:
            with self._lock:
                if sig != self._sig:
                    self._projects = load_projects(self._user_dir, self._builtin)
                    self._sig = sig
        return self._projects

    def find_project(self, name: str | None, project_id: str | None) -> Project | None:
        for project in self.projects().values():
            if (name is not None and project.name == name) or (
                name is None and project_id is not None and project.id == project_id
            ):
                if name is not None and project_id is not None and project.id != project_id:
                    return None
                return project
        return None


def find_template(project: Project, name: str | None, template_id: str | None) -> Template | None:
    for tpl in project.templates.values():
        if (name is not None and tpl.name == name) or (
            name is None and template_id is not None and tpl.id == template_id
        ):
            if name is not None and template_id is not None and tpl.id != template_id:
                return None
            return tpl
    return None


def builtin_dir() -> Path:
    return Path(__file__).with_name("demo")
