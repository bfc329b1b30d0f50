#!/usr/bin/env bash
# Refresh the translation catalogue after changing strings:
#   extract every gettext string, merge into portal/translations/zh, compile.
# Then fill the empty msgstr entries in portal/translations/zh/LC_MESSAGES/messages.po.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext -o portal/translations/messages.pot .
if [ -f portal/translations/zh/LC_MESSAGES/messages.po ]; then
  .venv/bin/pybabel -q update -N -i portal/translations/messages.pot -d portal/translations -l zh
else
  .venv/bin/pybabel -q init -i portal/translations/messages.pot -d portal/translations -l zh
fi
.venv/bin/pybabel -q compile -d portal/translations
grep -c '^msgstr ""$' portal/translations/zh/LC_MESSAGES/messages.po || true
