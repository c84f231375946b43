"""Print the environment-variable table of docs/configuration.md from the Settings class.

python scripts/settings_table.py            # print the table
python scripts/settings_table.py --write    # rewrite it in docs/configuration.md between the markers
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings
from app.config_errors import default_text, env_name

BEGIN = "<!-- settings-table:begin -->"
END = "<!-- settings-table:end -->"
CONFIGURATION = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


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
    text = CONFIGURATION.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    CONFIGURATION.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    main()
