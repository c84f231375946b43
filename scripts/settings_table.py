"""Print the README's environment-variable table from the Settings class.

python scripts/settings_table.py            # print the table
python scripts/settings_table.py --write    # rewrite it in README.md between the markers
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.config_errors import default_text, env_name

BEGIN = "<!-- settings-table:begin -->"
END = "<!-- settings-table:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def _default(name: str) -> str:
    if name == "model_cache_dir":  # the developer's home, not the one the table was made in
        return "`~/.cache/transcription-service`"
    value = default_text(name)
    return "unset" if value is None else f"`{value}`"


def table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{env_name(name)}` | {_default(name)} | {field.description or ''} |")
    return "\n".join(rows)


def main() -> None:
    if "--write" not in sys.argv:
        print(table())
        return
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    main()
