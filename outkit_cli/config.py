"""Profiles: a TOML file in the user config dir, plus environment overrides.

The file is created 0600 in a 0700 directory, replaced atomically on every write, locked
around read-modify-write, and never overwritten when it does not parse.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from outkit_cli.diagnostics import debug, is_verbose, warn
from outkit_cli.errors import AuthError, ConfigError, UsageError

if TYPE_CHECKING:
    # `outkit sign` resolves its settings without pathlib (which loads urllib.parse and
    # ipaddress), dataclasses or fsutil: a few milliseconds of its start-up (issue 10)
    from pathlib import Path


def _toml() -> Any:
    # imported when a file is actually parsed: `outkit sign` without a config file skips it
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    return tomllib


DEFAULT_API_URL = "https://api.outkit.io/v1"
DEFAULT_API_PATH = "/v1"  # DEFAULT_API_URL's path, known without parsing it
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3

# Keys a profile may hold, and their TOML types.
PROFILE_FIELDS: dict[str, type] = {
    "key": str,
    "passphrase": str,
    "secret": str,
    "api_url": str,
    "signed": bool,
    "project": str,
    "from": str,
    "backend": str,
    "timeout": float,
    "retries": int,
    "ca_bundle": str,
    "rate": float,  # send --batch: messages per second (--rate)
}
SECRET_FIELDS = ("secret", "passphrase")

ENV_CREDENTIALS = {
    "key": "OUTKIT_ACCESS_KEY",
    "secret": "OUTKIT_ACCESS_SECRET",
    "passphrase": "OUTKIT_ACCESS_PASSPHRASE",
}
ENV_PREFIX = "OUTKIT_ACCESS_"


def default_config_path() -> Path:
    from pathlib import Path

    return Path(_default_config_location())


def _default_config_location() -> str:
    if sys.platform.startswith("linux"):
        # platformdirs' rule on Linux is the XDG one, written out here because importing
        # platformdirs (tempfile, shutil, random) costs ~9 ms of `outkit sign`'s startup;
        # tests/test_config.py checks that both agree. One difference: a relative
        # XDG_CONFIG_HOME is ignored, as the XDG Base Directory spec says ("If an
        # implementation encounters a relative path ... it should consider the path
        # invalid and ignore it"); platformdirs would use it relative to the cwd
        base = os.environ.get("XDG_CONFIG_HOME", "")
        if not base.strip() or not os.path.isabs(base):
            base = os.path.expanduser("~/.config")
        return os.path.join(base, "outkit", "config.toml")
    import platformdirs

    return os.path.join(platformdirs.user_config_dir("outkit"), "config.toml")


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config (or OUTKIT_CONFIG, which click maps onto it) wins over the default."""
    from pathlib import Path

    return Path(config_location(explicit))


def config_location(explicit: str | os.PathLike[str] | None = None) -> str:
    """config_path() as a plain string, for the paths that must not import pathlib
    (`outkit sign`); every function of this module takes either."""
    if explicit:
        return os.path.expanduser(os.fspath(explicit))
    env = os.environ.get("OUTKIT_CONFIG")
    return os.path.expanduser(env) if env else _default_config_location()


def _parent(path: str | os.PathLike[str]) -> str:
    """The directory holding ``path`` (pathlib's ``Path.parent``: "." for a bare name)."""
    return os.path.dirname(os.fspath(path).rstrip(os.sep) or os.sep) or "."


def _check_permissions(path: str | os.PathLike[str]) -> None:
    """OpenSSH's rule for key files (ssh(1), "FILES"): a config another user owns, or that
    anyone but its owner can change, could point our credentials at their server; refused.
    One only readable by others leaks secrets but cannot redirect them: a warning."""
    if os.name != "posix":
        return
    me = os.geteuid()
    path = os.fspath(path)
    for what, where in (("config directory", _parent(path)), ("config file", path)):
        try:
            st = os.stat(where)
        except OSError:
            return
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid not in (me, 0) and me != 0:
            raise ConfigError(
                f"{what} {where} is owned by another user (uid {st.st_uid}); refusing to use "
                f"it: use a config of your own (--config or OUTKIT_CONFIG)"
            )
        sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_uid == 0
        if mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
            raise ConfigError(
                f"{what} {where} is writable by other users (mode {mode:o}); refusing to "
                f"use it: run: chmod go-w {where}"
            )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"{path} is readable by other users (mode {mode:o}); run: chmod 600 {path}")


def load_config(path: str | os.PathLike[str], *, check_permissions: bool = True) -> dict[str, Any]:
    """The parsed file, or an empty config when there is none yet."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if check_permissions:
        _check_permissions(path)
    tomllib = _toml()
    try:
        # utf-8-sig: a file saved by Notepad starts with a byte order mark, which TOML
        # (toml.io v1.0.0, "Spec") does not allow but which carries no meaning in UTF-8
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # PowerShell's `>` and Notepad's "Unicode"
            raise ConfigError(
                f"config file {path} is UTF-16; save it as UTF-8 (TOML is UTF-8 only)"
            ) from None
        raise ConfigError(
            f"config file {path} is not valid UTF-8 (byte {exc.start}); fix or remove it"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} does not parse: {exc}; fix or remove it") from None
    except RecursionError:
        raise ConfigError(
            f"config file {path} does not parse: nested too deeply; fix or remove it"
        ) from None
    _validate(path, data)
    return data


def _validate(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"config file {path}: 'profiles' must be a table")
    default = data.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"config file {path}: 'default_profile' must be a string")
    for name, prof in profiles.items():
        if not isinstance(prof, dict):
            raise ConfigError(f"config file {path}: [profiles.{name}] must be a table")
        for key, value in prof.items():
            expected = PROFILE_FIELDS.get(key)
            if expected is None:
                continue  # unknown keys are kept, for forward compatibility
            ok = (
                isinstance(value, (int, float)) and not isinstance(value, bool)
                if expected is float
                else isinstance(value, expected)
                and not (expected is int and isinstance(value, bool))
            )
            if not ok:
                raise ConfigError(
                    f"config file {path}: profiles.{name}.{key} must be {expected.__name__}"
                )


def dump_config(data: Mapping[str, Any]) -> bytes:
    import tomli_w

    return tomli_w.dumps(dict(data)).encode("utf-8")


@contextlib.contextmanager
def edit_config(location: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Locked read-modify-write: yields the parsed config, writes it back on success.

    The lock makes two concurrent writers (two `keys add` at once) both land.
    A file that does not parse raises before anything is written.
    """
    from pathlib import Path

    from filelock import FileLock, Timeout

    from outkit_cli.fsutil import (
        UnsafeFileError,
        ensure_private_dir,
        resolve_for_write,
        write_atomic,
    )

    path = Path(location)
    try:
        # a dangling symlink is refused before anything is made
        resolve_for_write(path, config=True)
        ensure_private_dir(path.parent, config=True)
        lock_path = path.with_name(path.name + ".lock")
        if lock_path.is_symlink():  # filelock would follow it, truncating what it points at
            raise UnsafeFileError(lock_path, "it is a symbolic link")
        lock = FileLock(str(path.with_name(path.name + ".lock")), timeout=10, mode=0o600)
        lock.acquire()
    except Timeout:
        raise ConfigError(f"config file {path} is locked by another outkit process") from None
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror}") from None
    try:
        if not path.exists():
            _check_permissions(path)  # no file yet: a directory others can write is refused
        data = load_config(path)
        yield data
        _remove_stale_temp_files(path)
        try:
            write_atomic(path, dump_config(data), config=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot write config file {path}: {exc.strerror}; it was left unchanged"
            ) from None
    finally:
        lock.release()


def _remove_stale_temp_files(path: Path) -> None:
    """Delete temp files that killed writers left behind (write_atomic's own cleanup never
    ran). Only called with the lock held, so no live writer's temp file can be among them."""
    import re

    real = path.resolve() if path.is_symlink() else path
    # exactly mkstemp's names for this file (8 random characters), not another config's
    # whose name merely starts the same
    pattern = re.compile(re.escape(f".{real.name}.") + r"[a-z0-9_]{8}\.tmp")
    with contextlib.suppress(OSError):
        for stale in real.parent.iterdir():
            if pattern.fullmatch(stale.name):
                with contextlib.suppress(OSError):
                    stale.unlink()


def profiles(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(data.get("profiles", {}))


def default_profile_name(data: Mapping[str, Any]) -> str | None:
    name = data.get("default_profile")
    profs = profiles(data)
    if name in profs:
        return name
    if len(profs) == 1:
        return next(iter(profs))
    return None


def unknown_profile(name: str, data: Mapping[str, Any], *, source: str | None = None) -> UsageError:
    """The error for a profile NAME the config file lacks; ``source`` names where NAME
    came from when not from the command line (an environment variable)."""
    known = ", ".join(sorted(profiles(data))) or "none; add one with `outkit keys add NAME`"
    where = f" (from {source})" if source else ""
    return UsageError(f"unknown profile {name!r}{where} (known profiles: {known})")


def save_profile(
    path: str | os.PathLike[str],
    name: str,
    values: Mapping[str, Any],
    *,
    make_default: bool = False,
) -> bool:
    """Create or replace a profile. Returns True when it became the default profile."""
    with edit_config(path) as data:
        profs = data.setdefault("profiles", {})
        profs[name] = {k: v for k, v in values.items() if v is not None}
        becomes_default = make_default or data.get("default_profile") not in profs
        if becomes_default:
            data["default_profile"] = name
    return becomes_default


class Settings:
    """Everything a command needs to reach the API, with where each value came from.

    A plain class, not a dataclass: importing dataclasses (and copy) and generating the
    methods cost `outkit sign` about a millisecond of start-up. Keyword arguments only;
    ``sources`` maps an attribute to where its value came from ("profile NAME", an
    environment variable, "command line")."""

    def __init__(
        self,
        *,
        profile: str | None = None,
        key: str | None = None,
        passphrase: str | None = None,
        secret: str | None = None,
        signed: bool = True,
        api_url: str = DEFAULT_API_URL,
        project: str | None = None,
        from_: str | None = None,
        backend: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        ca_bundle: str | None = None,
        rate: float | None = None,
        config_file: str | os.PathLike[str] | None = None,
        sources: dict[str, str] | None = None,
        known_profiles: tuple[str, ...] = (),
    ) -> None:
        self.profile = profile
        self.key = key
        self.passphrase = passphrase
        self.secret = secret
        self.signed = signed
        self.api_url = api_url
        self.project = project
        self.from_ = from_
        self.backend = backend
        self.timeout = timeout
        self.retries = retries
        self.ca_bundle = ca_bundle
        self.rate = rate
        self.config_file = config_file
        self.sources: dict[str, str] = {} if sources is None else sources
        # every profile in the config file, to name them when none was selected
        self.known_profiles = known_profiles
        # the OUTKIT_ACCESS_* variables set (non-empty), and the default profile they kept
        # out (another key's): named when the credentials are incomplete
        self.env_credentials: tuple[str, ...] = ()
        self.skipped_default: str | None = None

    def require_credentials(self) -> None:
        """Raise AuthError (exit 3, one line) when the key, passphrase or secret is missing,
        saying where they were looked for."""
        missing = [n for n in ("key", "passphrase", "secret") if not getattr(self, n)]
        if not missing:
            return
        if self.env_credentials:
            # some OUTKIT_ACCESS_* set: the user meant the environment; say what is there
            # and what is not, not "no profile" (a mistyped OUTKIT_ACCESS_KEYS met that)
            known = set(ENV_CREDENTIALS.values())
            set_ = [v for v in self.env_credentials if v in known]
            unknown = [v for v in self.env_credentials if v not in known]
            parts = [
                "incomplete credentials from the environment: "
                + (f"{', '.join(set_)} set, " if set_ else "")
                + f"{', '.join(ENV_CREDENTIALS[n] for n in missing)} missing"
            ]
            if unknown:
                parts.append(f"{', '.join(unknown)} is not a variable outkit reads")
            if self.skipped_default:
                parts.append(
                    f"the default profile {self.skipped_default!r} belongs to another key and "
                    f"is not used with them; `-p {self.skipped_default}` selects it"
                )
            raise AuthError("; ".join(parts))
        if self.profile is None and self.known_profiles:
            raise AuthError(
                "no profile selected and no default profile (profiles: "
                f"{', '.join(self.known_profiles)}): pass -p NAME, or set one with "
                "`outkit keys default NAME`"
            )
        raise AuthError(
            f"no credentials: missing {', '.join(missing)}. Add a profile with "
            "`outkit keys add NAME`, select one with --profile/OUTKIT_PROFILE, or set "
            "OUTKIT_ACCESS_KEY, OUTKIT_ACCESS_PASSPHRASE and OUTKIT_ACCESS_SECRET"
        )


def _env_number(env: Mapping[str, str], name: str, kind: type) -> Any:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value < 0:
        raise UsageError(f"{name} must not be negative")
    return value


def resolve_settings(
    path: str | os.PathLike[str],
    *,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    require_profile_file: bool = False,
    profile_source: str | None = None,
) -> Settings:
    """Precedence: command-line flag > environment > selected profile > built-in default.

    ``profile_source``: where ``profile`` came from when not the command line (the
    variable that set it), named in the error for an unknown profile."""
    env = os.environ if env is None else env
    data = load_config(path)
    profs = profiles(data)
    name = profile or env.get("OUTKIT_PROFILE") or None
    if name is not None and name not in profs:
        # a stale export is easy to forget: say where the name came from
        raise unknown_profile(name, data, source=profile_source if profile else "OUTKIT_PROFILE")
    # any OUTKIT_ACCESS_* (a mistyped OUTKIT_ACCESS_KEYS too): credentials meant to come
    # from the environment
    env_credentials = tuple(sorted(k for k, v in env.items() if k.startswith(ENV_PREFIX) and v))
    skipped_default = None
    if name is None:
        name = default_profile_name(data)
        own_key = profs.get(name, {}).get("key") if name else None
        # credential flags (`sign --key/--passphrase/--secret`) are given credentials too
        flags = {k: v for k, v in (overrides or {}).items() if k in ENV_CREDENTIALS and v}
        given_key = flags.get("key") or env.get("OUTKIT_ACCESS_KEY")
        if (env_credentials or flags) and own_key and given_key != own_key:
            # the default profile belongs to another key (or the key variable is missing):
            # its API URL, key and defaults are not the environment's (a `sandbox` default
            # would get production credentials sent to a local port, the cron recipe's
            # case, or mixed with the sandbox key); chosen with -p or OUTKIT_PROFILE, it is
            if is_verbose():
                debug(
                    f"credentials given (environment or flags): the default profile {name!r} "
                    "(another key) is not used; -p selects it"
                )
            skipped_default, name = name, None
    prof = profs.get(name, {}) if name else {}
    if require_profile_file and not prof:
        raise unknown_profile(name or "", data)

    s = Settings(profile=name, config_file=path, known_profiles=tuple(sorted(profs)))
    s.env_credentials, s.skipped_default = env_credentials, skipped_default

    def put(attr: str, value: Any, source: str) -> None:
        if value is not None:
            setattr(s, attr, value)
            s.sources[attr] = source

    for fname in PROFILE_FIELDS:
        attr = "from_" if fname == "from" else fname
        put(attr, prof.get(fname), f"profile {name}")
    for fname, var in ENV_CREDENTIALS.items():
        put(fname, env.get(var) or None, var)
    put("api_url", env.get("OUTKIT_API_URL") or None, "OUTKIT_API_URL")
    put("timeout", _env_number(env, "OUTKIT_TIMEOUT", float), "OUTKIT_TIMEOUT")
    put("retries", _env_number(env, "OUTKIT_RETRIES", int), "OUTKIT_RETRIES")
    for attr, value in (overrides or {}).items():
        put(attr, value, "command line")
    s.api_url = s.api_url.rstrip("/")
    _warn_stale_api_url(s, prof, env)
    _check_header_values(s)
    return s


def _warn_stale_api_url(s: Settings, prof: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """OUTKIT_API_URL overriding the API URL of the profile whose key is used: often a
    stale export from the sandbox recipe, which would send that profile's (production)
    credentials to whatever listens there. Allowed, but said, naming both."""
    # click may have mapped the variable onto --api-url: compare values, not sources
    from_env = (env.get("OUTKIT_API_URL") or "").rstrip("/")
    if not from_env or from_env != s.api_url or s.sources.get("key") != f"profile {s.profile}":
        return
    own = str(prof.get("api_url") or DEFAULT_API_URL).rstrip("/")
    if own != s.api_url:
        warn(
            f"OUTKIT_API_URL={s.api_url} overrides the API URL {own} of profile "
            f"{s.profile!r}, whose credentials are used; unset OUTKIT_API_URL if that is "
            "not meant"
        )


def header_problem(value: str) -> str | None:
    """Why ``value`` cannot travel in an HTTP header, or None."""
    if value != value.strip():
        return "it starts or ends with whitespace"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return "it has characters an HTTP header cannot carry"
    if not value.isprintable():
        return "it contains control characters"
    return None


def _check_header_values(s: Settings) -> None:
    """Credentials that travel in headers must fit in one: caught here, with where the value
    came from, instead of failing deep inside the HTTP library (it raised, exit 1)."""
    names = {"key": "access key", "passphrase": "passphrase", "secret": "secret"}
    for attr, what in names.items():
        value = getattr(s, attr)
        if not value or (attr == "secret" and s.signed):
            continue  # a signing secret only keys the HMAC: it is never sent
        problem = header_problem(value)
        if problem:  # the value itself is not shown: it may be a secret
            raise UsageError(
                f"the {what} from {s.sources.get(attr, 'settings')} cannot be sent in an "
                f"HTTP header: {problem}"
            )
