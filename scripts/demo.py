"""`make demo`: a local sandbox, a message sent from a template, followed until delivered.

Everything lives in a throw-away directory: the sandbox's data, the config file with the
profile `outkit serve --init-profile` writes (never your own config), and the outbox where
the delivered email lands. Each step runs the real `outkit` command and shows it; the
script exits non-zero as soon as a step fails.

    .venv/bin/python scripts/demo.py [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RECIPIENT = "Ada Lovelace <ada@example.com>"


class StepFailed(Exception):
    pass


def outkit_argv() -> list[str]:
    """The console script next to this interpreter, else `python -m outkit_cli`."""
    script = Path(sys.executable).with_name("outkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "outkit_cli"]


def heading(text: str) -> None:
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    print(f"\n\033[1m{text}\033[0m" if bold else f"\n== {text}", flush=True)


def step(title: str, args: list[str], env: dict[str, str], *, capture: bool = False) -> str:
    """Run `outkit ARGS`, showing the command; returns its stdout when captured."""
    heading(title)
    print("$ outkit " + " ".join(shlex.quote(a) for a in args), flush=True)
    proc = subprocess.run(
        [*outkit_argv(), *args],
        env=env,
        stdout=subprocess.PIPE if capture else None,
        text=True,
    )
    if proc.returncode != 0:
        raise StepFailed(f"`outkit {' '.join(args)}` exited with {proc.returncode}")
    if capture:
        print(proc.stdout, end="", flush=True)
        return proc.stdout
    return ""


def start_sandbox(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    heading("Starting the sandbox (a local Outkit-compatible server)")
    args = ["serve", "--port", "0", "--data-dir", str(data_dir), "--init-profile"]
    print("$ outkit " + " ".join(shlex.quote(a) for a in args), flush=True)
    from outkit_cli.sandbox.process import StartError, start_url_process

    with open(data_dir.parent / "serve.log", "wb") as log:
        try:
            proc, url = start_url_process([*outkit_argv(), *args], env=env, stderr=log)
        except StartError as exc:
            detail = (data_dir.parent / "serve.log").read_text(errors="replace").strip()
            raise StepFailed(
                f"the sandbox did not start ({exc}): {detail or 'no output'}"
            ) from None
    return proc, url


def stop_sandbox(proc: subprocess.Popen[bytes]) -> None:
    from outkit_cli.sandbox.process import stop_process

    stop_process(proc)


def keys_test_available() -> bool:
    try:
        from outkit_cli.commands.keys import keys
    except ImportError:
        return False
    return "test" in getattr(keys, "commands", {})


def delivered_file(outbox: Path, message_id: str) -> Path | None:
    for path in sorted((outbox / "new").glob("*")):
        if message_id in path.read_text("utf-8", "replace"):
            return path
    return None


def demo(tmp: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}
    env["OUTKIT_CONFIG"] = str(tmp / "config.toml")  # a throw-away config, never yours
    data_dir = tmp / "data"
    data_dir.mkdir()
    server, url = start_sandbox(data_dir, env)
    try:
        print(f"listening on {url}; profile 'sandbox' written to {env['OUTKIT_CONFIG']}")
        if keys_test_available():
            step("Checking the credentials of the new profile", ["keys", "test"], env)
        out = step(
            "Sending a message from the 'welcome' template (-q prints only its id)",
            ["send", "--template", "welcome", "--to", RECIPIENT, "--data", "name=Ada", "-q"],
            env,
            capture=True,
        )
        message_id = out.strip()
        if not message_id:
            raise StepFailed("`outkit send -q` printed no message id")
        step("Following it until it is done", ["get", message_id, "--wait"], env)
        status = step(
            "The status, as a script reads it",
            ["get", message_id, "--field", "status"],
            env,
            capture=True,
        ).strip()
        if status != "delivered":
            raise StepFailed(f"the message ended in status {status!r}, not 'delivered'")
        step("The rendered text body", ["get", message_id, "--body", "text"], env)
        step("Recent messages", ["get", "--limit", "5"], env)

        heading("Where the delivered email was written")
        path = delivered_file(data_dir / "outbox", message_id)
        if path is None:
            raise StepFailed(f"no email for {message_id} in {data_dir / 'outbox' / 'new'}")
        print(path)
        headers = path.read_text("utf-8", "replace").split("\n\n", 1)[0]
        for line in headers.splitlines():
            if line.split(":", 1)[0].lower() in {"from", "to", "subject", "date"}:
                print(f"  {line}")
    finally:
        # stopped before anything is printed: printing fails once a reader such as
        # `| head` has gone, and the sandbox must not outlive the demo
        stop_sandbox(server)
        with contextlib.suppress(BrokenPipeError):
            heading("Stopped the sandbox")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="outkit-demo-"))
    try:
        demo(tmp)
    except StepFailed as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted; the sandbox is stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (`make demo | head`): stop quietly, as `cat` does;
        # stdout goes to /dev/null so that flushing it at exit raises nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        if args.keep:
            print(f"\nkept {tmp} (sandbox data, outbox, config)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if not args.keep:
        print("\nThe demo's files were in a temporary directory, now removed (--keep keeps them).")
    print("Demo finished: the message was rendered, delivered and found in the outbox.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
