"""Chart records of matplotlib figures, as typed objects: ``Result.chart`` of a run's figure and
the entries of ``ExecuteResponse.artifacts.charts`` of ``code_run``.

Each kind of chart has its class, as in the product's SDKs (``LineChart``, ``BarChart``, ...),
and its members read as attributes::

    for chart in response.artifacts.charts:
        print(chart.type, chart.title)
        if isinstance(chart, BarChart):
            print([(bar.label, bar.value) for bar in chart.elements])

A chart (and each of its elements) is also the JSON object the server sent, a ``dict``:
``chart["title"]`` reads the same value as ``chart.title``, and a chart compares equal to its
JSON object. The record's fields are described in ``docs/protocol.md`` ("matplotlib figures and
charts"); a member the record does not have reads as ``None``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple, Type

__all__ = [
    "Chart",
    "Chart2D",
    "PointChart",
    "LineChart",
    "ScatterChart",
    "BarChart",
    "PieChart",
    "BoxAndWhiskerChart",
    "CompositeChart",
    "PointData",
    "BarData",
    "PieData",
    "BoxAndWhiskerData",
    "chart_from_json",
]


class _Record(dict):
    """A JSON object of the wire whose members also read as attributes (``None`` when absent)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({super().__repr__()})"


def _member(name: str, doc: str) -> Any:
    """A read-only attribute giving the record's member ``name``."""
    return property(lambda record: record.get(name), doc=doc)


class PointData(_Record):
    """A line (``plt.plot``) or a scatter collection of a ``line`` or ``scatter`` chart."""

    __slots__ = ()
    label = _member("label", "The series label (``None`` without one).")
    points = _member("points", "``[[x, y], ...]`` in data coordinates (ISO-8601 strings on a date axis).")


class BarData(_Record):
    """A bar of a ``bar`` chart."""

    __slots__ = ()
    label = _member("label", "The bar's category (the string plotted, or its tick's label), or its centre as text.")
    group = _member("group", "The series label (``None`` without one).")
    value = _member("value", "The bar's height (its width for a horizontal bar).")


class PieData(_Record):
    """A wedge of a ``pie`` chart."""

    __slots__ = ()
    label = _member("label", "The wedge's label.")
    angle = _member("angle", "The wedge's angle, in degrees.")
    radius = _member("radius", "The wedge's radius.")


class BoxAndWhiskerData(_Record):
    """A box of a ``box_and_whisker`` chart: the statistics ``boxplot`` drew."""

    __slots__ = ()
    label = _member("label", "The box's label.")
    min = _member("min", "The lower whisker's end.")
    first_quartile = _member("first_quartile", "The box's lower edge.")
    median = _member("median", "The median line.")
    third_quartile = _member("third_quartile", "The box's upper edge.")
    max = _member("max", "The upper whisker's end.")
    outliers = _member("outliers", "The points drawn beyond the whiskers.")


class Chart(_Record):
    """A figure's chart record: its ``type`` (``line``, ``scatter``, ``bar``, ``pie``,
    ``box_and_whisker``, ``composite_chart`` or ``unknown``), ``title`` and ``elements``."""

    __slots__ = ()
    type = _member("type", "The kind of chart: ``line``, ``scatter``, ``bar``, ``pie``, ``box_and_whisker``, "
                           "``composite_chart`` or ``unknown``.")
    title = _member("title", "The title (``None`` without one).")
    elements = _member("elements", "What the chart shows, one object per series, bar, wedge, box or (composite) axes.")
    png = _member("png", "``code_run``'s charts: the figure as a base64 PNG (``None`` in a run's ``Result.chart``: "
                         "the PNG is the result's ``png``).")


class Chart2D(Chart):
    """A chart drawn on axes: their labels, units, scales and ticks."""

    __slots__ = ()
    x_label = _member("x_label", "The x axis's label (``None`` without one).")
    y_label = _member("y_label", "The y axis's label (``None`` without one).")
    x_unit = _member("x_unit", "The x label's trailing ``(unit)``, else ``None``.")
    y_unit = _member("y_unit", "The y label's trailing ``(unit)``, else ``None``.")
    x_scale = _member("x_scale", "``linear``, ``log``, ``datetime``, ... (matplotlib's scale names).")
    y_scale = _member("y_scale", "``linear``, ``log``, ``datetime``, ... (matplotlib's scale names).")
    x_ticks = _member("x_ticks", "The x ticks' positions (ISO-8601 strings on a date axis).")
    x_tick_labels = _member("x_tick_labels", "The x ticks' labels, as the axes show them.")
    y_ticks = _member("y_ticks", "The y ticks' positions (ISO-8601 strings on a date axis).")
    y_tick_labels = _member("y_tick_labels", "The y ticks' labels, as the axes show them.")


class PointChart(Chart2D):
    """A chart of points: ``elements`` are :class:`PointData`."""

    __slots__ = ()


class LineChart(PointChart):
    """A ``line`` chart: one :class:`PointData` per line."""

    __slots__ = ()


class ScatterChart(PointChart):
    """A ``scatter`` chart: one :class:`PointData` per scatter collection."""

    __slots__ = ()


class BarChart(Chart2D):
    """A ``bar`` chart (vertical or horizontal bars): one :class:`BarData` per bar."""

    __slots__ = ()


class BoxAndWhiskerChart(Chart2D):
    """A ``box_and_whisker`` chart: one :class:`BoxAndWhiskerData` per box."""

    __slots__ = ()


class PieChart(Chart):
    """A ``pie`` chart: one :class:`PieData` per wedge."""

    __slots__ = ()


class CompositeChart(Chart):
    """A figure of several axes with content: ``elements`` are their charts, one per axes."""

    __slots__ = ()


#: The class of each chart type and of its elements (``None``: elements kept as sent).
_KINDS: Dict[str, Tuple[Type[Chart], Optional[Type[_Record]]]] = {
    "line": (LineChart, PointData),
    "scatter": (ScatterChart, PointData),
    "bar": (BarChart, BarData),
    "pie": (PieChart, PieData),
    "box_and_whisker": (BoxAndWhiskerChart, BoxAndWhiskerData),
    "unknown": (Chart2D, None),
}


def chart_from_json(value: Mapping[str, Any]) -> Chart:
    """The typed chart of a chart record: the class of its ``type`` (a composite chart's
    elements are charts too); a type this client does not know is a plain :class:`Chart`."""
    kind = value.get("type")
    if kind == "composite_chart":
        chart_class, element_of = CompositeChart, chart_from_json
    else:
        chart_class, element_class = _KINDS.get(kind, (Chart, None)) if isinstance(kind, str) else (Chart, None)
        element_of = element_class or (lambda element: element)
    chart = chart_class(value)
    if isinstance(chart.elements, list):
        chart["elements"] = [element_of(element) for element in chart.elements]
    return chart
