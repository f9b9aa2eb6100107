"""The documentation, executed: every shell block of README.md and docs/*.md runs as pasted.

Blocks fenced as ```sh, ```bash or ```shell run one after another, each in its own
`bash -e -o pipefail`, in one scratch directory per page with a fresh HOME and only the
venv's `bin/` added to PATH (as after `. .venv/bin/activate`). A page whose blocks do not
start a sandbox themselves gets one: the suite's sandbox, as the default profile `sandbox`
(project `demo`) of the fresh HOME's config, which is what `outkit serve --init-profile`
would have written. ```console blocks run each `$ command` and compare its output with the
lines shown below it.

A block that cannot run here says why on the line before its fence, as
`<!-- not run: REASON -->` (a real API key, a terminal to prompt on, ...); that reason is
checked to be there and is printed by `test_blocks_not_run_say_why`.
Background processes a block leaves (a sandbox started with `&`) are stopped after the page.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from outkit_cli.config import save_profile
from tests.sandbox_fixture import Sandbox

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGS = {"sh", "bash", "shell", "console"}
BLOCK_TIMEOUT = 180.0  # generous: a loaded machine runs these slower
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    not_run: str | None  # the reason, when marked

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page that are in a shell language."""
    lines = page.read_text("utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        end = start + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if lang in RUN_LANGS:
            marker = NOT_RUN.search(lines[start - 1]) if start else None
            text = "\n".join(lines[start + 1 : end]) + "\n"
            found.append(Block(page, start + 1, lang, text, marker.group(1) if marker else None))
        i = end + 1
    return found


RUNNABLE = {p.name: [b for b in blocks(p) if b.not_run is None] for p in PAGES}


def _env(home: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        "HOME": str(home),
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TERM": "dumb",
        "NO_COLOR": "1",
        "COLUMNS": "100",
    }


def _console_steps(text: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a ```console block."""
    steps: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        command = lines[i][2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command += "\n" + lines[i]
        i += 1
        out = []
        while i < len(lines) and not lines[i].startswith("$ "):
            out.append(lines[i])
            i += 1
        steps.append((command, "\n".join(out).rstrip("\n") + "\n"))
    return steps


class PageRun:
    """One page's blocks in one directory, with the process groups they leave behind."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.groups: list[int] = []
        self.n = 0

    def bash(self, script: str) -> tuple[int, str, str]:
        self.n += 1
        out = self.workdir.parent / f"block{self.n}.out"
        err = self.workdir.parent / f"block{self.n}.err"
        # output to files, not pipes: a background process the block starts may keep
        # its inherited descriptors open long after the block is done
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen(
                ["bash", "-e", "-o", "pipefail", "-c", script],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=fo,
                stderr=fe,
                start_new_session=True,
            )
            self.groups.append(proc.pid)
            try:
                code = proc.wait(BLOCK_TIMEOUT)
            except subprocess.TimeoutExpired:
                code = -1
        return code, out.read_text("utf-8", "replace"), err.read_text("utf-8", "replace")

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = []
            for pgid in self.groups:
                try:
                    os.killpg(pgid, sig)
                    alive.append(pgid)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + 15
            while alive and time.monotonic() < deadline:
                alive = [g for g in alive if _group_alive(g)]
                time.sleep(0.05)
            if not alive:
                return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _failure(block: Block, why: str, stdout: str, stderr: str) -> str:
    def tail(text: str) -> str:
        return "\n".join(text.rstrip("\n").splitlines()[-15:]) or "(empty)"

    return (
        f"{block.where}: this {block.lang} block {why}\n"
        f"--- the block ---\n{block.text}"
        f"--- stderr (last lines) ---\n{tail(stderr)}\n"
        f"--- stdout (last lines) ---\n{tail(stdout)}\n"
        "Fix the block so that it works as pasted, or mark it with "
        "`<!-- not run: REASON -->` on the line before its fence."
    )


@pytest.mark.parametrize("page", [n for n, bs in RUNNABLE.items() if bs])
def test_page_runs_as_pasted(page: str, sandbox: Sandbox, tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    workdir = tmp_path / "work"
    home.mkdir()
    workdir.mkdir()
    runnable = RUNNABLE[page]
    if not any(re.search(r"\boutkit serve\b", b.text) for b in runnable):
        save_profile(
            home / ".config" / "outkit" / "config.toml",
            "sandbox",
            {
                "key": sandbox.key,
                "passphrase": sandbox.passphrase,
                "secret": sandbox.secret,
                "api_url": sandbox.url,
                "project": "demo",
            },
        )
    run = PageRun(workdir, _env(home))
    try:
        for block in runnable:
            if block.lang == "console":
                for command, expected in _console_steps(block.text):
                    code, out, err = run.bash(command)
                    if code != 0:
                        pytest.fail(_failure(block, f"failed: `{command}` exit {code}", out, err))
                    if out != expected:
                        pytest.fail(
                            _failure(block, f"printed other output for `{command}`", out, err)
                            + f"\n--- shown in the docs ---\n{expected}"
                        )
                continue
            code, out, err = run.bash(block.text)
            if code == -1:
                pytest.fail(_failure(block, f"did not finish in {BLOCK_TIMEOUT:g} s", out, err))
            if code != 0:
                pytest.fail(_failure(block, f"failed with exit code {code}", out, err))
    finally:
        run.stop()


def test_blocks_not_run_say_why() -> None:
    skipped = [b for p in PAGES for b in blocks(p) if b.not_run is not None]
    for block in skipped:
        assert len(block.not_run or "") >= 10, f"{block.where}: say why it is not run"
        print(f"not run: {block.where}: {block.not_run}")
    # most of the documentation runs: a marker is for the few blocks that truly cannot
    total = sum(len(blocks(p)) for p in PAGES)
    assert len(skipped) * 2 <= total, [b.where for b in skipped]


def test_the_collector_sees_blocks_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```sh\necho one\n```\n<!-- not run: needs a real API key -->\n"
        "```bash\necho two\n```\n```toml\nx = 1\n```\n```console\n$ echo a \\\n  b\na b\n```\n"
    )
    found = blocks(page)
    assert [(b.line, b.lang, b.not_run) for b in found] == [
        (2, "sh", None),
        (6, "bash", "needs a real API key"),
        (12, "console", None),
    ]
    assert _console_steps(found[2].text) == [("echo a \\\n  b", "a b\n")]
