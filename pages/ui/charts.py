"""Charts built from plotly's graph objects: one trace per group, from arrays.

plotly.express builds the same figures but validates and regroups the frame on the way,
which costs seconds for a few dozen groups over 90 days (bench/pages.py); a list of traces
handed to one Figure costs a tenth of that. Each trace gets plain lists: plotly inspects a
numpy array through narwhals, about three times a list's cost per trace, which adds up to a
tenth of a second for a 90-day view by team and model. The traces built here from a frame's
columns are figures plotly need not check value by value: `_figure` skips that validation,
which took half the time of a per-hour chart's thousands of points.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from core.formatting import dollars

_DASHES = ("solid", "dot", "dash", "dashdot")
WEBGL_POINTS = 2000


def bars(frame: pd.DataFrame, *, x: str, y: str, color: str, title: str) -> go.Figure:
    """Stacked bars of `y` over `x`, one colour per value of `color`."""
    series = {str(name): (part[x].tolist(), part[y].tolist()) for name, part in frame.groupby(color, sort=False)}
    return bar_figure(series, title=title)


def bar_figure(series: Mapping[str, tuple[list, list]], *, title: str) -> go.Figure:
    """Stacked bars, one colour per named series of (x values, y values)."""
    traces = [{"type": "bar", "x": xs, "y": ys, "name": name} for name, (xs, ys) in series.items()]
    return _figure(traces, {"title": {"text": title}, "barmode": "relative"})


def lines(
    frame: pd.DataFrame, *, x: str, y: str, color: str, title: str, dash: str | None = None, markers: bool = True
) -> go.Figure:
    """Lines of `y` over `x`, one per value of `color` (and of `dash`, drawn dashed differently)."""
    keys = [color] if dash is None else [color, dash]
    series: dict = {}
    for key, part in frame.sort_values(x, kind="stable").groupby(keys, sort=False):
        name = (key[0], key[1]) if dash else (key[0] if isinstance(key, tuple) else key)
        series[name] = (part[x].tolist(), part[y].tolist())
    return line_figure(series, title=title, markers=markers)


def line_figure(series: Mapping, *, title: str, markers: bool = True) -> go.Figure:
    """Lines, one per named series of (x values, y values); a series named (name, style) is
    labelled "name (style)" and dashed by its style, each style its own dash."""
    styles: dict = {}
    for name in series:
        if isinstance(name, tuple):
            styles.setdefault(name[1], _DASHES[len(styles) % len(_DASHES)])
    # Past a few thousand points the browser draws SVG lines slowly: WebGL, and no markers.
    many = sum(len(xs) for xs, _ys in series.values()) > WEBGL_POINTS
    traces = []
    for name, (xs, ys) in series.items():
        label, style = (f"{name[0]} ({name[1]})", styles[name[1]]) if isinstance(name, tuple) else (str(name), "solid")
        traces.append(
            {
                "type": "scattergl" if many else "scatter",
                "x": xs,
                "y": ys,
                "name": label,
                "mode": "lines+markers" if markers and not many else "lines",
                "line": {"dash": style},
            }
        )
    return _figure(traces, {"title": {"text": title}})


def _figure(traces: list[dict], layout: dict) -> go.Figure:
    """A figure of traces built here (known types and attributes, lists of plain values),
    without plotly's check of every value."""
    return go.Figure(data=traces, layout=layout, _validate=False)


def count_axis(figure: go.Figure, largest: float) -> go.Figure:
    """Whole numbers on the y axis: a step of one while the counts are small (plotly would
    otherwise step by halves), thousands separated beyond."""
    if largest <= 10:
        return figure.update_yaxes(tick0=0, dtick=1, tickformat=",d")
    return figure.update_yaxes(tickformat=",d")


def percent_axis(figure: go.Figure, largest: float) -> go.Figure:
    """Percentages on the y axis with as many decimals as the shares need: rates of a few
    tenths of a percent would otherwise all read 0%."""
    decimals = 0 if largest >= 0.1 else 1 if largest >= 0.01 else 2
    return figure.update_yaxes(tickformat=f".{decimals}%", rangemode="tozero")


def spend_against_budget(teams: list[str], spent: list[float], budgets: list[float | None], title: str) -> go.Figure:
    """Each team's spend (a bar) beside its budget (a bar outlined, empty where there is none),
    amounts in dollars; hovering reads them as money."""
    spent_bars = go.Bar(x=teams, y=spent, name="Spent", hovertext=[dollars(v) for v in spent], hoverinfo="x+text+name")
    budget_bars = go.Bar(
        x=teams,
        y=[b or 0 for b in budgets],
        name="Monthly budget",
        hovertext=[dollars(b) if b is not None else "no monthly budget" for b in budgets],
        hoverinfo="x+text+name",
        marker={"color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "#636efa"}},
    )
    layout = {
        "title": {"text": title},
        "barmode": "group",
        "yaxis": {"tickprefix": "$", "tickformat": ",.2f", "rangemode": "tozero"},
        "height": 320,
        "margin": {"t": 40, "b": 30},
    }
    return go.Figure(data=[spent_bars, budget_bars], layout=layout)
