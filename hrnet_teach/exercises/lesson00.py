"""Lesson 00, welcome: one warm-up exercise to see how checking works."""
from __future__ import annotations

from ..i18n import N_, _
from ._answers import as_ints
from ._kinds import ValueExercise

H, W = PHOTO_SIZE = (256, 384)  # (height, width) of the photo in the question
SIZES = dict(h=H, w=W, h4=H // 4, w4=W // 4)

highres_size = ValueExercise(
    name="highres_size", lesson="00",
    question=N_("A photo of {h}x{w} pixels (height x width) goes into HRNet. The highest-resolution branch works "
                "at 1/4 of the input. What is its (height, width)?", **SIZES),
    read=lambda a: as_ints(a, 2, N_("the size (height, width) in pixels"), "(100, 200)"),
    reference=(H // 4, W // 4),
    success=N_("{h}x{w} -> {h4}x{w4}: two stride-2 convs, each halving both sides. HRNet keeps this 1/4 map all the "
               "way to the end.", **SIZES),
    mistakes={(W // 4, H // 4): N_("You swapped the two: PyTorch writes sizes as (height, width), height first."),
              (H // 2, W // 2): N_("That is 1/2, after one stride-2 conv; the stem has two, so the first branch is at 1/4."),
              PHOTO_SIZE: N_("That is the photo itself; the stem shrinks it before any branch starts."),
              (H // 32, W // 32): N_("That is 1/32, the lowest-resolution branch; the question asks for the highest (1/4).")},
    otherwise=lambda got, want: _("Not {a}x{b}: divide each side of {h}x{w} by 4.", a=got[0], b=got[1], **SIZES),
    hints=[N_("1/4 means: divide the height by 4 and the width by 4."), N_("{h} / 4 = {h4}. Now the width.", **SIZES)],
    solution_text=f"`answer = ({H // 4}, {W // 4})`",
    wrong_answers=[(64, "give two"), ((64.5, 96.0), "whole numbers")],
)

EXERCISES = [highres_size]
