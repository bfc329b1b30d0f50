"""Charts as SVG, rendered on the server with pygal, so they show without script (the portal's
Content-Security-Policy forbids inline script), print, and go into PDFs.

Every chart is rendered without pygal's JavaScript (``js=[]``) and any ``<script>`` element
pygal still writes (its config) is removed, so the markup can be embedded inline in a page.
Values are printed on the bars instead of tooltips. PDFs embed the same SVG as a data URI.

Rendering is most of a panel's cost once its numbers are read (pygal: 10–30 ms a chart), so
each worker keeps the last ``MEMO_SIZE`` charts by their inputs (title, labels, values,
options): a dashboard rebuilt after a change elsewhere in its subtree renders only the charts
whose numbers changed.
"""
from __future__ import annotations

import base64
import functools
import re
import threading
from collections import OrderedDict
from decimal import Decimal
from typing import Iterable, Sequence

import pygal
from markupsafe import Markup
from pygal.style import Style

from ..reports.pdf import CJK_FONTS

FONT = CJK_FONTS.replace('"', "'")
PALETTE = ("#2e7d32", "#c62828", "#f9a825", "#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#4e342e", "#546e7a")
# Five-category classes, normal to loss; buckets from current to the worst.
RISK_COLOURS = ("#2e7d32", "#f9a825", "#ef6c00", "#c62828", "#4a0000")

MEMO_SIZE = 512

SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _style(colours: Sequence[str] = PALETTE) -> Style:
    return Style(font_family=FONT, background="transparent", plot_background="transparent",
                 foreground="#222", foreground_strong="#111", foreground_subtle="#888", colors=tuple(colours),
                 title_font_size=15, label_font_size=12, major_label_font_size=12, legend_font_size=12,
                 value_font_size=11, value_label_font_size=11, tooltip_font_size=12)


def _config(title: str, colours: Sequence[str], height: int, **options) -> dict:
    config = dict(title=title, style=_style(colours), js=[], disable_xml_declaration=True, width=720, height=height,
                  legend_at_bottom=True, legend_at_bottom_columns=4, print_values=True, show_y_guides=True,
                  truncate_label=-1, truncate_legend=-1, margin=12, margin_bottom=26, spacing=10)
    config.update(options)
    return config


def clean(svg: str) -> Markup:
    """The SVG with no script and no comments, safe to put inline in a page."""
    return Markup(COMMENT.sub("", SCRIPT.sub("", svg)).strip())


def _render(chart) -> Markup:
    return clean(chart.render(is_unicode=True))


def _number(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    return value


def _percent(value) -> str:
    return "" if value is None else f"{value:.1f}%"


def _count(value) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}"


def _wide(text: str) -> int:
    """How many CJK (double-width) characters the text has."""
    return sum(1 for ch in str(text) if ord(ch) > 0x2E80)


def _frozen(value):
    """Lists (of lists, of pairs) as tuples, so that a chart's inputs can be a key."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _memo(render):
    """Keep the last ``MEMO_SIZE`` charts rendered by ``render``, by their inputs."""
    kept: OrderedDict = OrderedDict()
    lock = threading.Lock()

    @functools.wraps(render)
    def memoised(*args, **kwargs):
        args = tuple(list(a) if hasattr(a, "__next__") else a for a in args)   # a generator, read once
        key = (_frozen(args), _frozen(sorted(kwargs.items())))
        try:
            hash(key)
        except TypeError:            # inputs that cannot be a key: rendered every time
            return render(*args, **kwargs)
        with lock:
            if key in kept:
                kept.move_to_end(key)
                return kept[key]
        svg = render(*args, **kwargs)
        with lock:
            kept[key] = svg
            while len(kept) > MEMO_SIZE:
                kept.popitem(last=False)
        return svg

    memoised.cache_clear = kept.clear
    return memoised


@_memo
def bar(title: str, labels: Sequence[str], series: Iterable[tuple[str, Sequence]], *, percent: bool = False,
        horizontal: bool = False, stacked: bool = False, colours: Sequence[str] = PALETTE,
        height: int | None = None) -> Markup:
    """A bar chart: one bar per label and series (stacked if asked)."""
    kind = {(False, False): pygal.Bar, (True, False): pygal.HorizontalBar,
            (False, True): pygal.StackedBar, (True, True): pygal.HorizontalStackedBar}[(horizontal, stacked)]
    rows = max(len(labels), 1)
    options = {}
    if horizontal:  # pygal measures labels as Latin text; Chinese characters are wider than it thinks
        options["margin_left"] = 8 + 6 * max((_wide(label) for label in labels), default=0)
    chart = kind(**_config(title, colours, height or (max(260, 90 + 34 * rows) if horizontal else 340),
                           value_formatter=_percent if percent else _count,
                           x_label_rotation=0 if horizontal or rows <= 6 else 30, **options))
    series = [(name, [_number(v) for v in values]) for name, values in series]
    if percent:
        chart.range = (0, 100)
    else:
        _whole_ticks(chart, [v for _name, values in series for v in values])
    order = slice(None, None, -1) if horizontal else slice(None)   # pygal draws the first row at the bottom
    chart.x_labels = list(labels)[order]
    for name, values in series:
        chart.add(name, values[order])
    return _render(chart)


def _whole_ticks(chart, values: Sequence[float | None]) -> None:
    """Counts of a few (files on loan, inspections overdue) get whole-number ticks: pygal's own
    would be 0, 0.25, 0.5 … printed as 0, 0, 1, 1 …"""
    numbers = [v for v in values if v is not None]
    if numbers and all(float(v).is_integer() for v in numbers) and max(numbers) <= 10:
        top = max(1, int(max(numbers)))
        chart.range = (0, top)
        chart.y_labels = list(range(0, top + 1))


@_memo
def line(title: str, labels: Sequence[str], series: Iterable[tuple[str, Sequence]], *, percent: bool = False,
         colours: Sequence[str] = PALETTE) -> Markup:
    """A line over dates (or any ordered labels); long label lists show every n-th label."""
    labels = list(labels)
    chart = pygal.Line(**_config(title, colours, 320, value_formatter=_percent if percent else _count,
                                 x_label_rotation=30, show_minor_x_labels=False, dots_size=3,
                                 print_values=len(labels) <= 12))
    if percent:
        chart.range = (0, 100)
    chart.x_labels = labels
    step = max(1, len(labels) // 10)
    chart.x_labels_major = labels[::step]
    for name, values in series:
        chart.add(name, [_number(v) for v in values])
    return _render(chart)


@_memo
def pie(title: str, slices: Iterable[tuple[str, float]], *, colours: Sequence[str] = PALETTE,
        donut: bool = True) -> Markup:
    chart = pygal.Pie(**_config(title, colours, 320, value_formatter=_count, inner_radius=0.45 if donut else 0))
    for name, value in slices:
        chart.add(name, _number(value))
    return _render(chart)


VIEWBOX = re.compile(r'<svg\b([^>]*?)viewBox="0 0 (\d+) (\d+)"')


def sized(svg: str) -> str:
    """The SVG with its size as attributes, so an ``<img>`` knows its proportions (a page's
    inline SVG scales to its container without them)."""
    return VIEWBOX.sub(lambda m: f'<svg{m.group(1)}width="{m.group(2)}" height="{m.group(3)}" '
                                 f'viewBox="0 0 {m.group(2)} {m.group(3)}"', str(svg), count=1)


def data_uri(svg: str) -> str:
    """The SVG as a ``data:`` URI, for ``<img>`` in PDFs (WeasyPrint renders it as vector)."""
    return "data:image/svg+xml;base64," + base64.b64encode(sized(svg).encode()).decode()


def pdf_image(svg, *, max_width_mm: float = 250, max_height_mm: float = 140) -> Markup:
    """An ``<img>`` of the chart for a PDF, as large as fits both limits at its proportions."""
    if not svg:
        return Markup("")
    match = VIEWBOX.search(str(svg))
    width, height = (int(match.group(2)), int(match.group(3))) if match else (720, 320)
    scale = min(max_width_mm / width, max_height_mm / height)
    # A block of its own: two inline images would form one paragraph that pages cannot split.
    return Markup('<div class="chart"><img src="{}" style="width: {:.1f}mm; height: {:.1f}mm" alt=""></div>').format(
        data_uri(svg), width * scale, height * scale)
