"""Print the README's settings table from config.SETTINGS (paste it into README.md).

tests/test_config.py fails when a setting is missing from the README.
"""
from config import SETTINGS

print("| Environment variable | Default | Meaning |")
print("|---|---|---|")
for s in SETTINGS:
    default = "—" if s.default is None else f"`{s.default}`"
    print(f"| `{s.env}` | {default} | {s.help} |")
