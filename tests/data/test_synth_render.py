"""Rendering of the synthetic AG frames: classes look different, gaze is visible."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scenellm.data.synth.catalogue import CATALOGUE
from scenellm.data.synth.plan import Intent
from scenellm.data.synth.render import GAZE, render, video_look
from scenellm.data.synth.scene import BACK, FLOOR, Thing
from scenellm.data.synth.sprites import sprite
from scenellm.data.synth.world import simulate

SIZE = (160, 120)


def one_object_frame(name: str, person_x: float, facing: int):
    thing = Thing(CATALOGUE[name], 20.0, 16.0, BACK, (0.0, 0.0, 0.0, 0.0))
    thing.place(120.0, FLOOR[BACK] * SIZE[1])
    state = simulate([thing], [Intent(person_x, facing)], SIZE)[0]
    return state, thing.kind


def test_every_pair_of_classes_has_a_different_sprite():
    def on_grey(name):
        rgb, mask = sprite(CATALOGUE[name], 32, 32, 3)
        return np.where(mask[..., None], rgb, 128).astype(np.float64)  # (32, 32, 3)

    images = {name: on_grey(name) for name in CATALOGUE}
    for a, b in itertools.combinations(images, 2):
        assert np.abs(images[a] - images[b]).mean() > 20, (a, b)


def test_class_changes_the_mean_colour_of_its_box():
    state, _ = one_object_frame("food", 30.0, 1)
    look = video_look(np.random.default_rng(0), SIZE)
    x0, y0, x1, y1 = (round(v) for v in state.objects[0].box)
    means = {}
    for name in ("cup/glass/bottle", "food", "pillow"):
        img = np.asarray(render(state, [CATALOGUE[name]], look, np.random.default_rng(1)))
        means[name] = img[y0:y1, x0:x1].reshape(-1, 3).mean(0)
    for a, b in itertools.combinations(means, 2):
        assert np.abs(means[a] - means[b]).max() > 30, (a, b, means[a], means[b])


@pytest.mark.parametrize("facing", [-1, 1])
def test_head_shows_the_gaze_direction(facing):
    look = video_look(np.random.default_rng(0), SIZE)
    crops = {}
    for f in (-1, 1):
        state, kind = one_object_frame("book", 60.0, f)
        img = np.asarray(render(state, [kind], look, np.random.default_rng(1))).astype(int)
        hx, hy, r = state.figure.head
        crops[f] = img[round(hy - 2 * r) : round(hy + 2 * r), round(hx - 3 * r) : round(hx + 3 * r)]
    assert np.abs(crops[-1] - crops[1]).mean() > 5
    red = np.abs(crops[facing] - np.array(GAZE)).sum(-1) < 60  # (h, w) gaze-line pixels
    half = red.shape[1] // 2
    toward, away = (red[:, half:], red[:, :half]) if facing > 0 else (red[:, :half], red[:, half:])
    assert toward.sum() >= 3 and away.sum() == 0


def test_rendering_is_seeded():
    state, kind = one_object_frame("box", 60.0, 1)
    look = video_look(np.random.default_rng(0), SIZE)
    a = render(state, [kind], look, np.random.default_rng(5)).tobytes()
    b = render(state, [kind], look, np.random.default_rng(5)).tobytes()
    c = render(state, [kind], look, np.random.default_rng(6)).tobytes()
    assert a == b and a != c
