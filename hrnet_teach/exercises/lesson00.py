"""Lesson 00, welcome: one warm-up exercise to see how checking works."""
from __future__ import annotations

from ._answers import as_ints
from ._kinds import ValueExercise

PHOTO_SIZE = (256, 384)  # (height, width) of the photo in the question
H, W = PHOTO_SIZE

highres_size = ValueExercise(
    name="highres_size", lesson="00",
    question=(f"A photo of {H}x{W} pixels (height x width) goes into HRNet. The highest-resolution branch works "
              "at 1/4 of the input. What is its (height, width)?"),
    read=lambda a: as_ints(a, 2, "the size (height, width) in pixels", "(100, 200)"),
    reference=(H // 4, W // 4),
    success=(f"{H}x{W} -> {H // 4}x{W // 4}: two stride-2 convs, each halving both sides. HRNet keeps this 1/4 map "
             "all the way to the end."),
    mistakes={(W // 4, H // 4): "You swapped the two: PyTorch writes sizes as (height, width), height first.",
              (H // 2, W // 2): "That is 1/2, after one stride-2 conv; the stem has two, so the first branch is at 1/4.",
              PHOTO_SIZE: "That is the photo itself; the stem shrinks it before any branch starts.",
              (H // 32, W // 32): "That is 1/32, the lowest-resolution branch; the question asks for the highest (1/4)."},
    otherwise=lambda got, want: f"Not {got[0]}x{got[1]}: divide each side of {H}x{W} by 4.",
    hints=["1/4 means: divide the height by 4 and the width by 4.", f"{H} / 4 = {H // 4}. Now the width."],
    solution_text=f"`answer = ({H // 4}, {W // 4})`",
    wrong_answers=[(64, "give two"), ((64.0, 96.0), "whole numbers")],
)

EXERCISES = [highres_size]
