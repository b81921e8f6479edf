"""The dashboard's SVG charts as pure functions: what participants typed is escaped, every chart
says in words what it shows, and figures out of range are drawn within the chart."""

from __future__ import annotations

import re

from bots.console.charts import Interval, Point, group_map, split_bar, timeline

TYPED = '<script>alert("x")</script> & "quotes"'


def test_a_proposal_typed_with_markup_is_escaped_in_its_bar() -> None:
    svg = str(split_bar({"agree": 0.5, "neutral": 0.2, "disagree": 0.3}, None, TYPED, TYPED))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.startswith('<svg class="chart split" role="img"')
    assert re.search(r'aria-labelledby="(chart\d+t)"', svg) and "<desc id=" in svg


def test_an_interval_beyond_the_scale_is_drawn_within_the_bar() -> None:
    svg = str(split_bar({"agree": 1.2}, Interval(1.05, 0.9, 1.3), "t", "d"))
    xs = [float(x) for x in re.findall(r'x[12]?="(-?[\d.]+)"', svg)]
    assert xs and all(0 <= x <= 400 for x in xs)


def test_the_map_names_each_group_and_sizes_its_discs() -> None:
    points = [Point(0, 0, 40, 0), Point(1, 1, 10, 1), Point(1, 0, 1, 1)]
    svg = str(group_map(points, ["A", "B"], "Opinion map", "A 40, B 11"))
    radii = [float(r) for r in re.findall(r'<circle [^>]*r="([\d.]+)"', svg)]
    assert radii == sorted(radii, reverse=True) and radii[0] > radii[-1]  # big first, beneath
    assert ">A</text>" in svg and ">B</text>" in svg


def test_a_timeline_of_one_day_draws_bars_and_of_several_lines() -> None:
    one = str(timeline({"telegram": {"2026-03-02": 5}}, ["2026-03-02"], "t", "d"))
    assert "<rect" in one and "<polyline" not in one
    days = ["2026-03-02", "2026-03-03"]
    two = str(timeline({"a": {days[0]: 5}, "b": {days[1]: 7}}, days, "t", "d", lambda n: f"#{n}"))
    assert two.count("<polyline") == 2 and ">#7</text>" in two
