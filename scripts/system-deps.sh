#!/usr/bin/env bash
# Install the system packages the portal needs, where this machine lets us (Debian, root):
# a CJK font so PDFs show Chinese, poppler-utils for PDF checks in tests.
# Elsewhere, print what is missing and carry on: the portal runs without them, but PDFs
# would show empty boxes for Chinese.
set -u
need=()
fc-list 2>/dev/null | grep -qiE "wqy|noto sans cjk|noto serif cjk" || need+=(fonts-wqy-microhei)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
command -v fc-list >/dev/null 2>&1 || need+=(fontconfig)
# OCR of scanned documents for search (without it, scans are stored but their text is not searchable).
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr)
{ tesseract --list-langs 2>/dev/null | grep -qx chi_sim; } || need+=(tesseract-ocr-chi-sim)
# The browser the journeys in tests/e2e drive (Playwright uses it; it never downloads its own).
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${need[@]}" >/dev/null; }
else
  echo "WARNING: missing system packages: ${need[*]}. Install them with: sudo apt-get install ${need[*]}" >&2
fi
