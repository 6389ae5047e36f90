"""``--help`` that reads well at any width: docstrings reflowed into paragraphs (the
terminal wraps them, not the source's line breaks), no ``<bool>`` on flags and ``<str>``
rather than ``<list[str]>`` on repeatable options."""

from __future__ import annotations

import inspect
import re

import typer

_KEEP = re.compile(r"^\s*([-*•]|\d+\.|\w+:\s{2,})")  # list items and aligned key: value lines


def reflow(text: str | None) -> str | None:
    """Join the lines of each paragraph, except paragraphs that are lists or indented
    blocks (their line breaks carry meaning)."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = []
    for paragraph in paragraphs:
        lines = paragraph.splitlines()
        if any(_KEEP.match(line) or line.startswith(" ") for line in lines):
            out.append(paragraph)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def reflow_app(app: typer.Typer) -> None:
    """Reflow the help of every command and group of ``app``, recursively."""
    for command in app.registered_commands:
        command.help = reflow(command.help or inspect.getdoc(command.callback))
    if app.registered_callback is not None:
        callback = app.registered_callback
        callback.help = reflow(callback.help or inspect.getdoc(callback.callback))
    for group in app.registered_groups:
        reflow_app(group.typer_instance)
        info = group.typer_instance.info
        if isinstance(info.help, str):
            info.help = reflow(info.help)


def plain_type_labels() -> None:
    """Flags show no type; list options and arguments show their element type."""
    from typer import core

    for cls in (core._TyperParameter, core.TyperOption):
        if "display_type_rich" not in vars(cls) or vars(cls).get("_scenellm_labels"):
            continue
        original = cls.display_type_rich

        def display_type_rich(self, ctx, _original=original):
            if getattr(self, "is_flag", False):
                return None
            label = _original(self, ctx)
            return re.sub(r"^<list\[(.*)\]>$", r"<\1>", label) if label else label

        cls.display_type_rich = display_type_rich
        cls._scenellm_labels = True
