"""Progress of long loops: plain periodic lines outside a terminal, a live bar inside one."""

from __future__ import annotations

import io

from scenellm.progress import figures, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_outside_a_terminal_lines_are_throttled_but_the_last_always_comes():
    out = io.StringIO()
    with progress("finetune", 4, "epochs", stream=out, every=3600) as bar:
        for epoch in range(1, 5):
            bar.update(epoch, info=figures({"loss": 1.0 / epoch, "skip": "x"}, ("loss", "nope")))
    lines = out.getvalue().splitlines()
    assert [line.split("  [")[0] for line in lines] == [
        "finetune: 1/4 epochs  loss 1", "finetune: 4/4 epochs  loss 0.25"]


def test_every_update_is_a_line_when_the_interval_is_zero():
    out = io.StringIO()
    with progress("features", 3, "videos", stream=out, every=0) as bar:
        for _ in range(3):
            bar.update(advance=1)
    assert [line.split("  [")[0] for line in out.getvalue().splitlines()] == [
        "features: 1/3 videos", "features: 2/3 videos", "features: 3/3 videos"]


def test_a_resumed_loop_says_so_and_a_stopped_one_says_where():
    out = io.StringIO()
    with progress("vqvae", 10, "epochs", completed=4, stream=out, every=3600) as bar:
        bar.update(5)
        bar.update(6)  # throttled; stopped early (patience): the final line says 6/10
    lines = [line.split("  [")[0] for line in out.getvalue().splitlines()]
    assert lines == ["vqvae: resumed at 4/10 epochs", "vqvae: 5/10 epochs", "vqvae: 6/10 epochs"]
    out = io.StringIO()
    with progress("features", 3, "videos", stream=out, resumed="with 2 of 3 videos written"):
        pass
    assert out.getvalue().splitlines()[0] == "features: resumed with 2 of 3 videos written"


def test_in_a_terminal_no_plain_lines_are_written():
    out = Terminal()
    with progress("finetune", 2, "epochs", stream=out, every=0) as bar:
        bar.update(1, info="loss 0.5")
        bar.update(2)
    assert "finetune: 1/2" not in out.getvalue()
