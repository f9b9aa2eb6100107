"""Write completions/outkit.{bash,zsh,fish} from the CLI itself (`make completions`)."""

from __future__ import annotations

from pathlib import Path

from outkit_cli.commands.completion import SHELLS, completion_script

ROOT = Path(__file__).resolve().parent.parent
FILES = {"bash": "outkit.bash", "zsh": "outkit.zsh", "fish": "outkit.fish"}


def main() -> None:
    out = ROOT / "completions"
    out.mkdir(exist_ok=True)
    for shell in SHELLS:
        path = out / FILES[shell]
        path.write_text(completion_script(shell))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
