"""Private, atomic, symlink-safe file access, shared by the CLI and the sandbox.

Paths given to outkit often sit in shared places (a CSV next to its journal in a team
directory, /tmp): a symlink or a file planted there by another user must never make us
write into someone else's file. So files we write are opened with O_NOFOLLOW, created
0600, and refused unless they are regular files the user owns; whole-file rewrites go
through a temp file and os.replace (hatch's utils/fs.py write_atomic).

Stdlib only; `tempfile` is imported where used (it pulls in `random`, and `outkit sign`
must start fast).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from pathlib import Path

_POSIX = os.name == "posix"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_PATH: a directory we may traverse but not list (mode 0711) is still walkable
_DIRFLAGS = getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_MAX_LINKS = 40  # Linux's MAXSYMLINKS: more links in one path is a loop (ELOOP)


class UnsafeFileError(OSError):
    """A path we refuse to open: a symlink, not a regular file, or another user's file.

    An OSError so that callers' existing ``except OSError`` turn it into their one-line
    message; ``strerror`` says why, in words a user can act on.
    """

    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        super().__init__(errno.EPERM, why, os.fspath(path))


def _check_opened(fd: int, path: str | os.PathLike[str]) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(path, "not a regular file")
    # no exception for root: root truncating a user's file is the case this check is for
    if _POSIX and st.st_uid != os.geteuid():
        raise UnsafeFileError(path, "owned by another user")
    if st.st_nlink > 1:
        # a hard link planted in a shared directory is the victim's own inode: the owner
        # check passes, so the link count is what tells (where fs.protected_hardlinks is off)
        raise UnsafeFileError(path, "it has other hard links (refused: it could be another file)")
    return st


def _walk(path: str, *, strict: bool) -> tuple[int, str]:
    """Reach the directory holding `path` one component at a time (openat with O_NOFOLLOW),
    following a symlink only when the user running outkit or root owns it.

    This is Linux's fs.protected_symlinks rule (proc(5), /proc/sys/fs/protected_symlinks),
    applied to every component and in every directory, not only sticky world-writable ones:
    a link another user planted (``/tmp/shared/evil -> /home/victim``) must not lead our
    write into someone else's files. Walking by fd leaves no gap between check and use.

    Returns:
        (an O_PATH fd of the directory reached, the last component still to open there).
        With `strict` false, the walk stops early where the path stops existing or stops
        being a directory (nothing further to follow); the name is then "".

    Raises:
        UnsafeFileError: a symlink on the way is owned by another user.
        OSError: ELOOP for more than 40 links; ENOENT/ENOTDIR/EACCES when `strict`.
    """
    me = os.geteuid()
    head, name = os.path.split(path)
    stack = [p for p in reversed(head.split("/")) if p not in ("", ".")]
    fd = os.open("/" if path.startswith("/") else ".", _DIRFLAGS)
    links = 0
    try:
        while stack:
            part = stack.pop()
            try:
                nfd = os.open(part, _DIRFLAGS | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise
                try:
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if strict:
                        raise exc from None
                    return fd, ""
                if not stat.S_ISLNK(st.st_mode):
                    if strict:
                        raise exc from None
                    return fd, ""
                link = os.path.join(head, part) if not stack else part
                if st.st_uid not in (me, 0):
                    why = (
                        f"symbolic link {_shown(path, part)} is owned by another user "
                        f"(uid {st.st_uid}); refusing to follow it"
                    )
                    raise UnsafeFileError(link, why) from None
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                target = os.readlink(part, dir_fd=fd)
                if target.startswith("/"):
                    nfd = os.open("/", _DIRFLAGS)
                    os.close(fd)
                    fd = nfd
                stack.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                continue
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def _shown(path: str, part: str) -> str:
    """The link's name as the user can find it: the given path up to that component when
    it is spelled there, else the component alone (it came from another link's target)."""
    parts = path.split("/")
    if part in parts:
        return "/".join(parts[: parts.index(part) + 1]) or part
    return part


def check_links(path: str | os.PathLike[str], *, config: bool = False) -> None:
    """Refuse `path` when reaching it would follow a symlink owned by another user (see
    _walk: fs.protected_symlinks on every component, the last one included).

    Args:
        path: a file or directory; missing parts are fine (nothing there to follow).
        config: the path is outkit's own config: root may then follow any link, so that
            ``sudo -E outkit keys add`` still writes a user's config kept in dotfiles.

    Raises:
        UnsafeFileError: naming the link.
    """
    if not _POSIX or (config and os.geteuid() == 0):
        return
    # a trailing component is checked as a directory on the way ("x/." walks x too)
    fd, _ = _walk(os.path.join(os.fspath(path), "."), strict=False)
    os.close(fd)


def open_private(path: str | os.PathLike[str], *, write: bool, truncate: bool = False) -> int:
    """Open `path` without following a symlink and return the file descriptor.

    Args:
        path: the file; a missing one is created 0600 when `write` is true.
        write: open for reading and appending (``O_RDWR | O_APPEND``) instead of read-only.
        truncate: empty the file, only after it passed the checks (O_TRUNC would empty
            another user's group-writable file before we could refuse it).

    Returns:
        An fd with close-on-exec set and in blocking mode.

    Raises:
        UnsafeFileError: `path` is a symlink, a directory on the way is reached through a
            symlink owned by another user (see _walk), or `path` is not a regular file (a
            FIFO, a device, a directory) or is owned by another user (root included).
        OSError: the open itself failed (ENOENT when reading a missing file, EACCES, ...).
    """
    flags = _NOFOLLOW | _NONBLOCK | _CLOEXEC  # NONBLOCK: a FIFO must not hang the open
    flags |= (os.O_RDWR | os.O_APPEND | os.O_CREAT) if write else os.O_RDONLY
    try:
        if _POSIX:
            dfd, name = _walk(os.fspath(path), strict=True)
            try:
                fd = os.open(name or ".", flags, 0o600, dir_fd=dfd)
            finally:
                os.close(dfd)
        else:
            fd = os.open(path, flags, 0o600)
    except UnsafeFileError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            why = "it is a symbolic link (refused: it could point at another user's file)"
            raise UnsafeFileError(path, why) from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # ENXIO: a FIFO without a reader
            raise UnsafeFileError(path, "not a regular file") from None
        raise
    try:
        _check_opened(fd, path)
        if _NONBLOCK and _POSIX:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
        if truncate:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


class OpenDirectory:
    """A directory opened once (O_PATH): files named under it are opened relative to this
    handle (`open`), so a directory swapped for a link (or moved away) after it was opened
    is never followed: what the run started with is what it reads from.

    Args:
        path: the directory (trusted: the user named it, links in it are theirs).

    `open` raises what `open_beneath` raises, and OSError when the directory itself cannot
    be opened (ENOENT, EACCES, ENOTDIR).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None
        self._lock = threading.Lock()

    def open(self, name: str) -> int:
        """`open_beneath` from this directory: an fd of the regular file `name`. The
        directory itself is opened on the first call (a run without files never needs
        it) and kept."""
        if not _POSIX:
            return open_beneath(self.path, name)
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, _DIRFLAGS)
            return open_beneath(self._fd, name)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def open_beneath(root: str | os.PathLike[str] | int, name: str) -> int:
    """Open the regular file `name`, relative to the directory `root`, for reading, without
    following a symbolic link anywhere from `root` down (each component opened with
    O_NOFOLLOW, relative to its parent's fd: what is checked is what is read, with no
    gap in which a component can be swapped for a link).

    For files named by untrusted data (a batch row's attachments): a name cannot leave
    `root`, through `..`, an absolute path or a link, whatever races the run.

    Args:
        root: the directory names start from (trusted: links in it are the user's own), or
            an fd of it opened before (`OpenDirectory`; it stays open).
        name: a relative path, `/`-separated.

    Returns:
        An fd (close-on-exec) of a regular file, open read-only.

    Raises:
        UnsafeFileError: `name` is absolute, holds `..` or a NUL character, a component is
            a symbolic link, or the file is not a regular file (a directory, a FIFO).
        OSError: the file cannot be opened (ENOENT, EACCES, ENAMETOOLONG, ENOTDIR, ...).
    """
    if "\x00" in name:
        raise UnsafeFileError(name, "a name with a NUL character")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if os.path.isabs(name) or ".." in parts or not parts:
        raise UnsafeFileError(name, OUTSIDE)
    if not _POSIX:  # no dir fds: refuse links by lstat, then open (a narrow race remains)
        assert not isinstance(root, int)
        path = os.path.join(root, *parts)
        for i in range(1, len(parts) + 1):
            if os.path.islink(os.path.join(root, *parts[:i])):
                raise UnsafeFileError(name, _LINK_WHY)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    else:
        dfd = os.dup(root) if isinstance(root, int) else os.open(root, _DIRFLAGS)
        try:
            for part in parts[:-1]:
                try:
                    nfd = os.open(part, _DIRFLAGS | _NOFOLLOW, dir_fd=dfd)
                except OSError as exc:
                    _raise_if_link(exc, dfd, part, name)
                    raise
                os.close(dfd)
                dfd = nfd
            flags = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC  # a FIFO must not hang
            try:
                fd = os.open(parts[-1], flags, dir_fd=dfd)
            except OSError as exc:
                _raise_if_link(exc, dfd, parts[-1], name)
                raise
        finally:
            os.close(dfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFileError(name, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


OUTSIDE = "outside the directory"  # open_beneath's reason for a name that leaves it
_LINK_WHY = "a symbolic link (refused: it could point outside the directory)"


def _raise_if_link(exc: OSError, dfd: int, part: str, name: str) -> None:
    """O_NOFOLLOW's failure (ELOOP for a file, ENOTDIR for O_PATH|O_DIRECTORY) told as
    what it is when `part` is a symbolic link."""
    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        # O_NOFOLLOW met a link at `part` (one component: no other link was walked); it
        # may be gone by now, which a second look would miss
        raise UnsafeFileError(name, _LINK_WHY) from None
    try:
        st = os.stat(part, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(name, _LINK_WHY) from None


def ensure_private_dir(directory: str | os.PathLike[str], *, config: bool = False) -> Path:
    """Create `directory` (and missing parents) 0700; an existing one keeps its mode.

    Args:
        config: outkit's config directory (see check_links: root may follow its links).

    Returns:
        The directory as a Path.

    Raises:
        UnsafeFileError: it exists but is a symlink, not a directory, or another user's,
            or a symlink on the way is another user's (check_links).
        OSError: it cannot be created.
    """
    directory = Path(directory)
    check_links(directory, config=config)
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _POSIX:
            os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
        st = os.lstat(directory)
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(directory)  # a symlinked dir of one's own (~/.config -> dotfiles)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFileError(directory, "not a directory")
    # root-owned directories (/tmp, a system config dir) are trusted, as OpenSSH does
    if _POSIX and st.st_uid not in (os.geteuid(), 0) and os.geteuid() != 0:
        raise UnsafeFileError(directory, "owned by another user")
    return directory


def resolve_for_write(path: str | os.PathLike[str], *, config: bool = False) -> Path:
    """The file a write to `path` must change: `path` itself, or the existing file a
    symlink points to (a config kept in a dotfiles repo).

    Args:
        config: outkit's config file (see check_links: root may follow its links).

    Raises:
        UnsafeFileError: `path` is a symlink whose target does not exist (a write must
            not create files or directories wherever a link points), or a symlink on the
            way is another user's (check_links).
    """
    path = Path(path)
    check_links(path, config=config)
    if not path.is_symlink():
        return path
    real = Path(os.path.realpath(path))
    if not real.exists():
        why = f"it is a symbolic link to {real}, which does not exist"
        why += "; create that file or remove the link"
        raise UnsafeFileError(path, why)
    return real


def write_atomic(
    path: str | os.PathLike[str], content: bytes, *, mode: int = 0o600, config: bool = False
) -> Path:
    """Replace the file at `path` with `content`; a reader or a crash sees the old file or
    the new one, never a partial one (temp file in the same directory, fsync, os.replace).

    Args:
        path: the file. A symlink is not replaced: the existing file it points to is,
            keeping that file's owner and mode (see resolve_for_write).
        content: the new bytes.
        mode: permission bits of a file written fresh (a regular file is always rewritten
            with `mode`, tightening one that was loosened).
        config: outkit's config file (see check_links: root may follow its links).

    Returns:
        The path actually written.

    Raises:
        UnsafeFileError: a dangling symlink, or a directory that is not ours.
        OSError: the write failed; the old file is then unchanged.

    Run as root on a user's file (``sudo -E outkit keys add``), the file keeps its owner
    and group, so the user can still read their config.
    """
    import tempfile

    original = Path(path)
    target = resolve_for_write(original, config=config)
    linked = target != original
    directory = target.parent
    if linked:
        if not directory.is_dir():
            raise UnsafeFileError(directory, "not a directory")
    else:
        ensure_private_dir(directory, config=config)
    try:
        old: os.stat_result | None = os.lstat(target)
    except FileNotFoundError:
        old = None
    if old is not None and not stat.S_ISREG(old.st_mode):
        raise UnsafeFileError(target, "not a regular file")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            if _POSIX:
                keep = linked and old is not None
                os.fchmod(fh.fileno(), stat.S_IMODE(old.st_mode) if keep and old else mode)
                if old is not None and os.geteuid() == 0 and old.st_uid != 0:
                    os.fchown(fh.fileno(), old.st_uid, old.st_gid)
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
    return target


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in `directory` durable (POSIX; a no-op elsewhere)."""
    if not _POSIX:
        return
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def remove_stale(directory: str | os.PathLike[str], *, older_than: float) -> None:
    """Delete regular files in `directory` not modified for `older_than` seconds
    (best effort: a file another process holds or removed is skipped)."""
    import time

    limit = time.time() - older_than
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_mtime < limit:
                    os.unlink(entry.path)
