"""Lesson 00, welcome: one warm-up exercise to see how checking works."""
from __future__ import annotations

from ._answers import as_ints
from ._base import Exercise, Wrong

PHOTO_SIZE = (256, 384)  # (height, width) of the photo in the question


def _check_highres_size(answer) -> str:
    height, width = as_ints(answer, 2, "the size (height, width) in pixels", "(100, 200)")
    expected = (PHOTO_SIZE[0] // 4, PHOTO_SIZE[1] // 4)
    if (height, width) == expected:
        return (f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} -> {expected[0]}x{expected[1]}: two stride-2 convs, "
                "each halving both sides. HRNet keeps this 1/4 map all the way to the end.")
    if (height, width) == expected[::-1]:
        raise Wrong("You swapped the two: PyTorch writes sizes as (height, width), height first.")
    if (height, width) == (PHOTO_SIZE[0] // 2, PHOTO_SIZE[1] // 2):
        raise Wrong("That is 1/2, after one stride-2 conv; the stem has two, so the first branch is at 1/4.")
    if (height, width) == PHOTO_SIZE:
        raise Wrong("That is the photo itself; the stem shrinks it before any branch starts.")
    if (height, width) == (PHOTO_SIZE[0] // 32, PHOTO_SIZE[1] // 32):
        raise Wrong("That is 1/32, the lowest-resolution branch; the question asks for the highest (1/4).")
    raise Wrong(f"Not {height}x{width}: divide each side of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} by 4.")


highres_size = Exercise(
    name="highres_size",
    lesson="00",
    question=(f"A photo of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} pixels (height x width) goes into HRNet. "
              "The highest-resolution branch works at 1/4 of the input. What is its (height, width)?"),
    checker=_check_highres_size,
    reference=(PHOTO_SIZE[0] // 4, PHOTO_SIZE[1] // 4),
    hints=["1/4 means: divide the height by 4 and the width by 4.",
           f"{PHOTO_SIZE[0]} / 4 = {PHOTO_SIZE[0] // 4}. Now the width."],
    solution_text=f"`answer = ({PHOTO_SIZE[0] // 4}, {PHOTO_SIZE[1] // 4})`",
    wrong_answers=[
        ((PHOTO_SIZE[0] // 2, PHOTO_SIZE[1] // 2), "the stem has two"),
        ((PHOTO_SIZE[1] // 4, PHOTO_SIZE[0] // 4), "swapped"),
        (PHOTO_SIZE, "the photo itself"),
        (64, "give two"),
        ((64.0, 96.0), "whole numbers"),
    ],
)

EXERCISES = [highres_size]
