"""What `outkit sign`, `outkit --help` and `outkit --version` load (issue 10, section 7).

Not timing tests: each command runs in a child interpreter through the console script's
entry point, and the test reads that child's ``sys.modules`` afterwards. Every module
named here was once on the path and was deferred (docs/benchmarks.md, "Start-up"); the
test fails when one comes back. (``python -X importtime`` does not list modules that
``importlib.import_module`` loads, such as the subcommands, so sys.modules is read.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from outkit_cli.commands.sign import _TARGET_SAFE, encoding_warning
from outkit_cli.config import DEFAULT_API_PATH, DEFAULT_API_URL

SIGN = ("sign", "POST", "/v1/messages", "--body", '{"message":{"type":"email"}}',
        "--secret", "s", "--timestamp", "1")  # fmt: skip

# never on any of these paths: the HTTP stack and rich (the team's rule), and what the
# config file location, the settings and the help used to pull in
NEVER = {
    "requests", "rich", "urllib3", "pathlib", "dataclasses", "copy", "urllib.parse",
    "ipaddress", "shutil", "tempfile", "platformdirs", "tomllib", "tomli", "json",
    "base64", "difflib", "outkit_cli.fsutil", "outkit_cli.client",
    "outkit_cli.message_view",
}  # fmt: skip
# signing needs hashlib (HMAC-SHA256); nothing else does
SIGNING = {"hashlib", "_hashlib", "hmac", "outkit_cli.signing"}

CHILD = """
import gc, os, sys
sys.argv = ["outkit", *sys.argv[1:]]
from outkit_cli.__main__ import main
try:
    main()
except SystemExit as exc:
    code = exc.code
loaded = sorted(sys.modules)
os.write(2, ("\\nMODULES " + " ".join(loaded) + "\\n").encode())
os.write(2, ("GC %s EXIT %s\\n" % (gc.isenabled(), code)).encode())
"""


ROOT = Path(__file__).resolve().parent.parent


def modules_after(args: tuple[str, ...], env: dict[str, str]) -> tuple[set[str], str]:
    """The modules loaded by `outkit ARGS` in a fresh interpreter, and its status line.

    The child runs without the site module (-S): an editable install's import hook, set up
    from a .pth file, itself imports pathlib and more, which a regular install does not.
    This checkout and the dependencies' directories are put on the path instead."""
    import site

    path = [str(ROOT), *site.getsitepackages()]
    proc = subprocess.run(
        [sys.executable, "-S", "-c", CHILD, *args],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": os.pathsep.join(path)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    loaded = next(line for line in lines if line.startswith("MODULES "))
    return set(loaded.split()[1:]), lines[-1]


@pytest.fixture(params=["OUTKIT_CONFIG", "default location"])
def child_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The test's isolated environment; without OUTKIT_CONFIG the default location (under a
    temp XDG_CONFIG_HOME) is worked out, which once imported pathlib."""
    env = dict(os.environ)
    if request.param == "default location":
        env.pop("OUTKIT_CONFIG")
    else:
        Path(env["OUTKIT_CONFIG"]).parent.mkdir(parents=True)
    return env


@pytest.mark.parametrize(
    "args", [SIGN, ("--help",), ("--version",), ("sign", "--help")], ids=lambda a: " ".join(a)
)
def test_fast_paths_load_only_what_they_need(
    args: tuple[str, ...], child_env: dict[str, str]
) -> None:
    loaded, status = modules_after(args, child_env)
    assert "click" in loaded  # the list is real
    assert status == "GC True EXIT 0"  # the collector is on again once the command ran
    assert not loaded & NEVER
    if args == SIGN:
        assert loaded >= SIGNING
    else:
        assert not loaded & SIGNING


def test_sign_with_another_api_url_still_works(child_env: dict[str, str]) -> None:
    """The default API URL's path is known without urllib.parse; any other is parsed."""
    child_env["OUTKIT_API_URL"] = "http://127.0.0.1:9/outkit/v1"
    proc = subprocess.run(
        [sys.executable, "-m", "outkit_cli", *SIGN],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "does not start with /outkit/v1" in proc.stderr
    assert "did you mean /outkit/v1/messages?" in proc.stderr


def test_the_known_default_api_path_is_the_default_urls_path() -> None:
    assert urlsplit(DEFAULT_API_URL).path == DEFAULT_API_PATH


@pytest.mark.parametrize("char", [chr(c) for c in range(0x80)] + ["é", "\u2028", "日"])
def test_encoding_warning_agrees_with_quote_for_every_character(char: str) -> None:
    """The quick check that skips urllib.parse gives what quote() would have decided."""
    path = f"/v1/messages/a{char}b"
    needs_encoding = quote(path, safe=_TARGET_SAFE) != path
    assert (encoding_warning(path) is not None) == needs_encoding


def test_entry_point_is_the_module_that_defers_the_imports() -> None:
    """The console script must enter through outkit_cli.__main__ (gc, Ctrl-C handling)."""
    assert 'outkit = "outkit_cli.__main__:main"' in (ROOT / "pyproject.toml").read_text()
    # and the module imports nothing heavy itself: click comes in only inside main()
    code = "import sys, outkit_cli.__main__; print(json.dumps('click' in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True
    )
    assert json.loads(out.stdout) is False, out.stderr


# Ctrl-C while the CLI is still starting: a sitecustomize module (imported by the interpreter
# at start-up, before the console script runs) sends the process SIGINT the moment click's
# import begins, as a user pressing Ctrl-C then would.
INTERRUPT_CLICK_IMPORT = """
import os, signal, sys


class InterruptClickImport:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None


sys.meta_path.insert(0, InterruptClickImport())
"""


@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_ctrl_c_during_start_up_exits_130_without_a_traceback(how: str, tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(INTERRUPT_CLICK_IMPORT)
    script = Path(sys.executable).with_name("outkit")
    argv = [str(script)] if how == "console script" else [sys.executable, "-m", "outkit_cli"]

    def sign(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        argv_sign = [*argv, "sign", "GET", "/v1/messages", "--secret", "s"]
        return subprocess.run(argv_sign, capture_output=True, text=True, env=env, timeout=60)

    proc = sign({**os.environ, "PYTHONPATH": str(tmp_path)})
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "")
    # the same run without the interruption signs: the hook did not break the start-up
    proc = sign(dict(os.environ))
    assert proc.returncode == 0 and "Signature" in proc.stdout, proc.stderr
