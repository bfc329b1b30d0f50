"""Charts are SVG without script (the CSP forbids inline script), print their values, and embed
in PDFs at their proportions."""
from __future__ import annotations

import base64
import re

from portal.auditing import charts


def test_svg_has_no_script_and_shows_its_values():
    for svg in (charts.bar("完整率", ["城关信用社", "河西信用社"], [("完整率", [33.3, 50.0])], percent=True, horizontal=True),
                charts.bar("检查", ["B1", "B2"], [("逾期", [3, 1]), ("本周", [2, 0])], stacked=True),
                charts.line("趋势", ["2024-06-01", "2024-06-02"], [("完整率", [40.0, 42.9])], percent=True),
                charts.pie("风险", [("正常", 10), ("关注", 3)])):
        assert svg.startswith("<svg") and "<script" not in svg.lower() and "<!--" not in svg
        assert not re.search(r"\son\w+=", svg)                      # no event handler attributes
    horizontal = charts.bar("完整率", ["城关信用社", "河西信用社"], [("完整率", [33.3, 50.0])], percent=True, horizontal=True)
    assert "33.3%" in horizontal and "50.0%" in horizontal and "城关信用社" in horizontal
    # The first row is drawn on top: pygal draws the first label at the bottom, so it is reversed.
    assert horizontal.index("河西信用社") < horizontal.index("城关信用社")


def test_pdf_image_keeps_proportions_within_limits():
    svg = charts.bar("x", ["a"], [("s", [1])])
    html = str(charts.pdf_image(svg, max_width_mm=100, max_height_mm=100))
    width, height = map(float, re.search(r"width: ([\d.]+)mm; height: ([\d.]+)mm", html).groups())
    assert width == 100.0 and abs(height - 100 * 340 / 720) < 0.1
    data = base64.b64decode(re.search(r'base64,([^"]+)"', html).group(1)).decode()
    assert 'width="720" height="340"' in data
    assert charts.pdf_image(None) == ""


def test_a_chart_is_rendered_once_per_inputs():
    from portal.auditing import charts
    first = charts.bar("同一图", ["甲", "乙"], [("件数", [1, 2])])
    assert charts.bar("同一图", ["甲", "乙"], [("件数", [1, 2])]) is first             # kept, not redrawn
    changed = charts.bar("同一图", ["甲", "乙"], [("件数", [1, 3])])
    assert changed is not first and ">3<" in str(changed)                              # other numbers: drawn
    assert charts.bar("同一图", ["甲", "乙"], ((name, v) for name, v in [("件数", [1, 2])])) is first


def test_small_counts_get_whole_number_ticks():
    """Three files on loan are drawn on a 0, 1, 2, 3 scale, not 0, 0.25, … printed as 0, 0, 1 …"""
    def y_ticks(svg) -> list[str]:
        axis = str(svg)[str(svg).index('class="axis y'):]
        return re.findall(r"<text[^>]*>([^<]*)</text>", axis[:axis.index("</g></g>") + 8] if "</g></g>" in axis else axis)

    ticks = y_ticks(charts.bar("借出", ["甲", "乙"], [("借出中", [3, 0]), ("逾期未还", [1, 0])]))
    assert ticks[:4] == ["0", "1", "2", "3"] and len(ticks) == len(set(ticks))
    assert y_ticks(charts.bar("借出", ["甲"], [("借出中", [0])]))[:2] == ["0", "1"]     # nothing on loan
    balances = y_ticks(charts.bar("余额", ["甲"], [("余额", [1234.5])]))                # amounts: pygal's scale
    assert "1" not in balances[:3]
