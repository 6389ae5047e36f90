"""The lineage graph keeps identifiers whole: a long run name is squeezed into its box."""

from __future__ import annotations

from scenellm.audit.graph import Node, render_svg


def test_a_long_run_name_is_drawn_whole_and_fitted_to_its_box():
    name = "run train-prudent-tortoise-of-ultimate-insight"
    svg = render_svg([Node("run", name, "abc", None, 0), Node("git", "git commit", "x", None,
                                                             0, 1)], [], {})
    assert f">{name}</text>" in svg
    assert svg.count("lengthAdjust") == 1  # only the long label is squeezed
