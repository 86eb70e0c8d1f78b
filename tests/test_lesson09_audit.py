"""Lesson 09's audit (findings 5, 7, 11-17): the attention shape's image sizes, the region pooling's slips, the
notebook's text against the official HRNet-OCR code."""
import nbformat
import pytest
import torch
import torch.nn.functional as F

from hrnet_teach import i18n
from hrnet_teach.exercises import lesson09
from hrnet_teach.translate import EN_DIR


def _message(ex, answer):
    result = ex.check(answer)
    assert not result.passed
    return result.message


# ------------------------------------------------------------------ attention_shape: which image, which K
@pytest.mark.parametrize("answer, said", [
    ((1, 131072, 19), "the 1/4 map of a 1024x2048 image (or 1/2 of 512x1024)"),
    ((1, 32768, 4), "so K = 19 regions"),
    ((1, 8192, 19), "8,192 = 64 x 128 is the 1/8 map"),
])
def test_a_size_from_another_image_or_model_is_named(answer, said):
    message = _message(lesson09.attention_shape, answer)
    assert said in message and "Not (" not in message


# ------------------------------------------------------------------ region_pooling: the slips the audit ran
def _flat(regions):
    return regions.flatten(2)


def no_transpose(feats, regions):
    return torch.softmax(_flat(regions), 2) @ feats.flatten(2)


def no_transpose_bmm(feats, regions):
    return torch.bmm(torch.softmax(_flat(regions), dim=2), feats.reshape(feats.shape[0], feats.shape[1], -1))


def probabilities_then_softmax(feats, regions):
    return torch.softmax(torch.softmax(regions, 1).flatten(2), 2) @ feats.flatten(2).transpose(1, 2)


def hard_regions(feats, regions):  # a learner's version: clamps the count, so an empty region would give 0
    hard = F.one_hot(regions.argmax(1), regions.shape[1]).permute(0, 3, 1, 2).flatten(2).float()
    return hard / hard.sum(2, keepdim=True).clamp(min=1) @ feats.flatten(2).transpose(1, 2)


@pytest.mark.parametrize("answer, said", [
    (no_transpose, "the pixels must be the rows of the second matrix"),
    (no_transpose_bmm, "the pixels must be the rows of the second matrix"),
    (probabilities_then_softmax, "per-pixel class probabilities"),
    (hard_regions, "You averaged the pixels whose argmax is k"),
])
def test_the_slips_get_their_message(answer, said):
    assert said in _message(lesson09.region_pooling, answer)


def test_the_transpose_slip_is_told_by_what_the_answer_computes_not_by_the_error():
    def other_error(feats, regions):  # raises as the slip does, on every case, but computes something else
        if feats.shape[1] != feats.shape[2] * feats.shape[3]:
            raise RuntimeError("Expected size for first two dimensions of batch2 tensor")
        return lesson09._region_pooling(feats, regions)

    message = _message(lesson09.region_pooling, other_error)
    assert "rows of the second matrix" not in message and "raised RuntimeError" in message


def test_the_new_pooling_messages_speak_chinese():
    try:
        i18n.set_language("zh")
        assert "第二个矩阵的行必须是像素" in _message(lesson09.region_pooling, no_transpose)
        assert "argmax" in _message(lesson09.region_pooling, hard_regions)
        assert "本题的图像是 512x1024" in _message(lesson09.attention_shape, (1, 131072, 19))
    finally:
        i18n.set_language("en")


def test_the_success_message_says_the_official_recipe_starts_from_imagenet():
    message = lesson09.ocr_new_keys.check(["aux_head", "cls_head", "conv3x3_ocr", "ocr_distri_head"]).message
    assert "start from ImageNet weights, which have no last_layer" in message
    assert "there aux_head starts from V2's head" not in message


# ------------------------------------------------------------------ the notebook
def _cells():
    return {c.id: c.source for c in nbformat.read(EN_DIR / "09_ocr.ipynb", as_version=4).cells}


def test_the_notebook_says_what_the_audit_asked():
    cells = _cells()
    assert "### Exercise 2: the attention's shape on a 512×1024 training crop" in cells["ocrpick3"]  # after the pixel explorer
    assert "32,768 × 19" not in cells["957eb351"]  # the exercise's answer is not written under it
    assert "reverses the paper's order" in cells["957eb351"]
    assert "The paper's formula has no such factor" in cells["ceedb795"]
    assert "unscaled" in cells["0c49743f"]
    assert "C is now the pixel representations'" in cells["c96bdc69"]
    assert "the loss is the official" not in cells["6567b7ef"] and "OHEM" in cells["6567b7ef"]
    assert "`MODEL.NUM_OUTPUTS: 2`" in cells["2e29f9ab"] and "hard-codes" in cells["2e29f9ab"]
    assert "ImageNet weights, which have no `last_layer`" in cells["625c1f58"]
