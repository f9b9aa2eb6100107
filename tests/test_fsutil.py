"""Files are private and never followed through links: journals, --results, the config.

The attack these tests replay: in a shared directory, another user plants
`rows.csv.outkit-journal` (or the --results name) as a symlink to a file of the victim's,
or to a missing `~/.bash_login`; the victim's batch must refuse, not write through it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from outkit_cli.fsutil import UnsafeFileError, open_private, write_atomic
from tests.helpers import run

ROWS = "to,data.name\na@example.com,A\n"
DRY = ("--project", "demo", "--template", "welcome", "--dry-run")
CREDS = {
    "OUTKIT_ACCESS_KEY": "k",
    "OUTKIT_ACCESS_PASSPHRASE": "p",
    "OUTKIT_ACCESS_SECRET": "s",
    "OUTKIT_API_URL": "http://127.0.0.1:9/v1",
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_open_private_creates_0600_and_refuses_links_fifos_and_dirs(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        os.close(open_private(tmp_path / "new", write=True))
    finally:
        os.umask(old)
    assert mode(tmp_path / "new") == 0o600
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "link").symlink_to(victim)
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("link", "dangling", "fifo", "dir"):
        for write in (True, False):
            with pytest.raises(UnsafeFileError):
                os.close(open_private(tmp_path / name, write=write))
    assert victim.read_text() == "precious"
    assert not (tmp_path / "missing").exists()


def test_truncate_happens_only_after_the_checks(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(UnsafeFileError):
        open_private(tmp_path / "link", write=True, truncate=True)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("planted", ["journal", "results"])
@pytest.mark.parametrize("target", ["existing", "dangling"])
def test_a_planted_symlink_is_refused_and_its_target_untouched(
    tmp_path: Path, planted: str, target: str
) -> None:
    src = tmp_path / "rows.csv"
    src.write_text(ROWS)
    victim = tmp_path / "home-file"
    if target == "existing":
        victim.write_text("precious\n")
    name = "rows.csv.outkit-journal" if planted == "journal" else "out.jsonl"
    (tmp_path / name).symlink_to(victim)
    args = ["send", "--batch", str(src), *DRY[:-1]]  # journals are written by real runs
    if planted == "results":
        args += ["--dry-run", "--results", str(tmp_path / name)]
    result = run(*args, env=CREDS)
    assert result.exit_code == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "symbolic link" in lines[0], result.stderr
    if target == "existing":
        assert victim.read_text() == "precious\n"
    else:
        assert not victim.exists()


def test_a_journal_that_is_not_a_journal_is_never_truncated(tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    src.write_text(ROWS)
    doc = tmp_path / "notes.txt"
    doc.write_bytes(b"my notes\nwithout a final newline")
    result = run(
        "send", "--batch", str(src), "--journal", str(doc), *DRY[:-1],
        env=CREDS,
    )  # fmt: skip
    assert result.exit_code == 2, result
    assert "not a batch journal" in result.stderr and len(result.stderr.splitlines()) == 1
    assert doc.read_bytes() == b"my notes\nwithout a final newline"


def test_results_file_is_created_0600(tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    src.write_text(ROWS)
    out = tmp_path / "out.jsonl"
    old = os.umask(0)
    try:
        result = run("send", "--batch", str(src), *DRY, "--results", str(out))
    finally:
        os.umask(old)
    assert result.exit_code == 0, result
    assert mode(out) == 0o600


def test_stdin_journal_state_dir_is_0700(tmp_path: Path, sandbox: object) -> None:
    env = sandbox.env()  # type: ignore[attr-defined]
    old = os.umask(0)
    try:
        result = run("send", "--batch", "-", *DRY[:-1], input=ROWS, env=env)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result
    state = Path(os.environ["HOME"]) / ".local" / "state" / "outkit"
    assert mode(state) == 0o700
    assert mode(state / "journals") == 0o700
    journals = list((state / "journals").iterdir())
    assert journals and all(mode(j) == 0o600 for j in journals)


# --- the config file ----------------------------------------------------------------------


def test_writing_a_symlinked_config_writes_its_target_in_place_keeping_mode(
    tmp_path: Path, config_file: Path
) -> None:
    real = tmp_path / "dotfiles" / "outkit.toml"
    real.parent.mkdir()
    real.write_text('[profiles.a]\nkey = "k"\n')
    real.chmod(0o400)
    config_file.parent.mkdir(mode=0o700)
    config_file.symlink_to(real)
    result = run("keys", "default", "a")
    assert result.exit_code == 0, result
    assert config_file.is_symlink() and os.readlink(config_file) == str(real)
    assert mode(real) == 0o400
    assert "default_profile" in real.read_text()
    assert sorted(p.name for p in real.parent.iterdir()) == ["outkit.toml"]


def test_a_dangling_config_symlink_is_refused_and_nothing_is_created(
    tmp_path: Path, config_file: Path
) -> None:
    target = tmp_path / "nowhere" / "deeper" / "config.toml"
    config_file.parent.mkdir(mode=0o700)
    config_file.symlink_to(target)
    result = run("keys", "add", "a", "--key", "k", "--passphrase", "p", "--secret", "s")
    assert result.exit_code == 2, result
    assert len(result.stderr.splitlines()) == 1
    assert "does not exist" in result.stderr
    assert config_file.is_symlink()
    assert not (tmp_path / "nowhere").exists()


def test_write_atomic_never_replaces_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert write_atomic(link, b"new") == real
    assert link.is_symlink() and real.read_bytes() == b"new" and mode(real) == 0o640


# --- other users -------------------------------------------------------------------------
# The checks compare owners with os.geteuid(): pretending to be another uid makes the test
# user's own files "another user's" without needing root to chown them.


@pytest.fixture
def someone_else(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], int]:
    """Returns `give(path)`: makes `path` another user's file and returns that uid."""
    if os.name != "posix":
        pytest.skip("POSIX owners")
    real = os.geteuid()
    # root-owned files are trusted (as OpenSSH does): as root, chown to an ordinary uid
    owner = 54321 if real == 0 else real
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)

    def give(path: Path) -> int:
        if real == 0:
            os.chown(path, owner, owner)
        return owner

    return give


def test_a_config_owned_by_another_user_is_refused(
    config_file: Path, someone_else: Callable[[Path], int]
) -> None:
    config_file.parent.mkdir(mode=0o700)
    config_file.write_text('[profiles.a]\nkey = "k"\npassphrase = "p"\nsecret = "s"\n')
    config_file.chmod(0o644)
    uid = someone_else(config_file.parent)
    someone_else(config_file)
    for args in (("keys", "list"), ("-p", "a", "sign", "GET", "/v1/messages")):
        result = run(*args)
        assert result.exit_code == 2, result
        assert result.stderr.splitlines() == [
            f"error: config directory {config_file.parent} is owned by another user (uid "
            f"{uid}); refusing to use it: use a config of your own (--config or "
            "OUTKIT_CONFIG)"
        ]


def test_a_journal_owned_by_another_user_is_refused(
    tmp_path: Path, someone_else: Callable[[Path], int]
) -> None:
    src = tmp_path / "rows.csv"
    src.write_text(ROWS)
    journal = tmp_path / "rows.csv.outkit-journal"
    journal.write_text('{"type":"batch","version":2,"input":"rows.csv"}\n')
    before = journal.read_bytes()
    someone_else(journal)
    result = run("send", "--batch", str(src), *DRY[:-1], env=CREDS)
    assert result.exit_code == 2, result
    # the patched euid also makes the run's own input lock file (created by the real root
    # euid) look foreign, and that lock is taken first: either refusal names the cause
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: cannot ") and line.endswith(": owned by another user")
    assert journal.read_bytes() == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="chown needs root")
def test_root_writing_a_users_config_keeps_its_owner(config_file: Path) -> None:
    other = 54321
    config_file.parent.mkdir(mode=0o700)
    config_file.write_text('[profiles.a]\nkey = "k"\n')
    config_file.chmod(0o600)
    os.chown(config_file, other, other)
    result = run("keys", "default", "a")
    assert result.exit_code == 0, result
    st = config_file.stat()
    assert (st.st_uid, st.st_gid, mode(config_file)) == (other, other, 0o600)
    assert "default_profile" in config_file.read_text()


def test_a_planted_hard_link_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.link(victim, tmp_path / "out.jsonl")
    with pytest.raises(UnsafeFileError, match="hard links"):
        open_private(tmp_path / "out.jsonl", write=True, truncate=True)
    assert victim.read_text() == "precious"


# --- symlinks owned by another user, anywhere in the path (fs.protected_symlinks) --------
NOBODY = 65534
as_root = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0, reason="chown to another uid needs root"
)


def _shared_with_evil_link(tmp_path: Path) -> tuple[Path, Path, Path]:
    """/shared (sticky, world-writable) holding `evil`, another user's link to a victim's
    directory; returns (shared, evil, victim's precious file)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.mkdir()
    precious = victim / "precious"
    precious.write_text("precious")
    evil = shared / "evil"
    evil.symlink_to(victim)
    os.chown(evil, NOBODY, NOBODY, follow_symlinks=False)
    return shared, evil, precious


@as_root
def test_open_private_refuses_a_directory_link_owned_by_another_user(tmp_path: Path) -> None:
    _, evil, precious = _shared_with_evil_link(tmp_path)
    for target in (evil / "precious", evil / "new.jsonl"):
        with pytest.raises(UnsafeFileError) as info:
            open_private(target, write=True, truncate=True)
        assert info.value.strerror == (
            f"symbolic link {evil} is owned by another user (uid {NOBODY}); refusing to follow it"
        )
    assert precious.read_text() == "precious"
    assert sorted(p.name for p in precious.parent.iterdir()) == ["precious"]


@as_root
def test_a_link_inside_another_links_target_is_checked_too(tmp_path: Path) -> None:
    _, evil, precious = _shared_with_evil_link(tmp_path)
    mine = tmp_path / "mine"
    mine.symlink_to(evil.parent)  # my link -> shared; shared/evil is nobody's
    with pytest.raises(UnsafeFileError, match="owned by another user"):
        open_private(mine / "evil" / "precious", write=True, truncate=True)
    with pytest.raises(UnsafeFileError, match="owned by another user"):
        write_atomic(mine / "evil" / "precious", b"x")
    assert precious.read_text() == "precious"


def test_own_directory_links_are_followed(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles"
    real.mkdir()
    (tmp_path / "config").symlink_to("dotfiles")  # relative, as `ln -s` makes them
    fd = open_private(tmp_path / "config" / "out.jsonl", write=True)
    os.close(fd)
    assert (real / "out.jsonl").is_file()
    assert write_atomic(tmp_path / "config" / "c.toml", b"x") == tmp_path / "config" / "c.toml"
    assert (real / "c.toml").read_bytes() == b"x"


def test_a_link_loop_is_an_error_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError) as info:
        open_private(tmp_path / "a" / "out", write=True)
    assert info.value.errno in (errno.ELOOP, errno.EMLINK)


@as_root
def test_cli_results_through_another_users_link_exits_2_naming_the_link(
    tmp_path: Path,
) -> None:
    _, evil, precious = _shared_with_evil_link(tmp_path)
    src = tmp_path / "rows.csv"
    src.write_text(ROWS)
    results = evil / "precious"
    result = run("send", "--batch", str(src), *DRY, "--results", str(results), env=CREDS)
    assert result.exit_code == 2, result
    assert result.stderr.splitlines() == [
        f"error: cannot write --results {results}: symbolic link {evil} is owned by another "
        f"user (uid {NOBODY}); refusing to follow it"
    ]
    assert precious.read_text() == "precious"


@as_root
def test_cli_results_owned_by_another_user_is_refused_even_for_root(tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    src.write_text(ROWS)
    others = tmp_path / "others.jsonl"
    others.write_text("theirs\n")
    os.chown(others, NOBODY, NOBODY)
    result = run("send", "--batch", str(src), *DRY, "--results", str(others), env=CREDS)
    assert result.exit_code == 2, result
    assert result.stderr.splitlines() == [
        f"error: cannot write --results {others}: owned by another user"
    ]
    assert others.read_text() == "theirs\n"
