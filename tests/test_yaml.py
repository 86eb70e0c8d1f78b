"""HRNetConfig.from_yaml on every official experiment file: the file's own model, exactly.

tests/data/official_yaml/ holds the MODEL sections (and DATASET.NUM_CLASSES) of every
experiment YAML of the authors' three repositories; tests/data/official_yaml.json
records what the official code builds from each full file (tests/data/README.md).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hrnet_teach as ht
from hrnet_teach.ocr import HRNetOCR

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "official_yaml.json").read_text())["files"]
HRNET_FILES = sorted(name for name, r in RECORDED.items() if r["model_name"] != "pose_resnet")
RESNET_FILES = sorted(name for name, r in RECORDED.items() if r["model_name"] == "pose_resnet")
CLASSES = {
    "seg_hrnet": ht.HRNetSegmentation,
    "seg_hrnet_ocr": HRNetOCR,
    "cls_hrnet": ht.HRNetClassification,
    "pose_hrnet": ht.HRNetPose,
}
OCR_FILE = DATA / "official_yaml/HRNet-Semantic-Segmentation/HRNet-OCR/experiments/cityscapes" \
    / "seg_hrnet_ocr_w48_train_512x1024_sgd_lr1e-2_wd5e-4_bs_12_epoch484.yaml"


@functools.cache
def meta_layout(cfg: ht.HRNetConfig) -> tuple[type, int, str, int, bool]:
    """Class, key count, key/shape digest, parameters and align_corners of create_model(cfg), on the
    meta device; cached, since many files describe the same model (HRNetConfig is hashable)."""
    with torch.device("meta"):
        model = ht.create_model(cfg)
    state = model.state_dict()
    params = sum(p.numel() for p in model.parameters())
    return type(model), len(state), keyshape_sha256(state), params, model.align_corners


def keyshape_sha256(state: dict) -> str:
    import hashlib

    lines = sorted(f"{k} {','.join(str(d) for d in v.shape)}" for k, v in state.items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_shipped_files_are_the_recorded_ones():
    shipped = {str(p.relative_to(DATA / "official_yaml")) for p in (DATA / "official_yaml").rglob("*.yaml")}
    assert shipped == set(RECORDED)
    by_repo = {}
    for record in RECORDED.values():
        by_repo[record["repo"]] = by_repo.get(record["repo"], 0) + 1
    assert by_repo == {"HRNet/HRNet-Semantic-Segmentation": 37, "HRNet/HRNet-Image-Classification": 9,
                       "leoxiaobin/deep-high-resolution-net.pytorch": 16}


def test_the_issue_counts_on_the_default_branch():
    """Issue 9: on HRNet-OCR (the default branch) 10 files are seg_hrnet_ocr and 10 set ALIGN_CORNERS False."""
    default = [r for r in RECORDED.values() if r["branch"] == "HRNet-OCR"]
    assert sum(r["model_name"] == "seg_hrnet_ocr" for r in default) == 10
    assert sum(r.get("align_corners") is False for r in default) == 10


@pytest.mark.parametrize("name", HRNET_FILES)
def test_every_official_file_builds_the_official_model(name):
    recorded = RECORDED[name]
    model_class, count, sha256, params, align_corners = meta_layout(ht.HRNetConfig.from_yaml(DATA / "official_yaml" / name))
    assert model_class is CLASSES[recorded["model_name"]]
    assert count == recorded["count"]
    assert sha256 == recorded["sha256"], f"{name}: keys/shapes differ from the official model"
    assert params == recorded["params"]
    if recorded["branch"] == "HRNet-OCR":  # the code that reads MODEL.ALIGN_CORNERS
        assert align_corners is recorded["align_corners"]


def test_master_branch_files_do_not_say_align_corners():
    """The master / pytorch-v1.1 code upsamples with a bare mode='bilinear' (align_corners False);
    their files have no ALIGN_CORNERS, so from_yaml takes the HRNet-OCR default (True)."""
    name = next(n for n in HRNET_FILES if n.startswith("HRNet-Semantic-Segmentation/master/") and "w18_small_v1" in n)
    cfg = ht.HRNetConfig.from_yaml(DATA / "official_yaml" / name)
    assert RECORDED[name]["align_corners"] is False
    assert cfg.head_kwargs["align_corners"] is True
    assert ht.create_model(cfg, align_corners=False).align_corners is False


@pytest.mark.parametrize("name", RESNET_FILES)
def test_pose_resnet_files_are_refused_by_name(name):
    with pytest.raises(ValueError, match=r"not an HRNet config \(MODEL\.NAME: pose_resnet\)"):
        ht.HRNetConfig.from_yaml(DATA / "official_yaml" / name)


def test_ocr_file_reads_its_own_model_and_lists_what_it_ignores():
    cfg = ht.HRNetConfig.from_yaml(OCR_FILE)
    assert cfg.head == "ocr"
    assert cfg.head_kwargs == {"num_classes": 19, "align_corners": True, "mid_channels": 512, "key_channels": 256}
    assert cfg.stages == ht.get_config("w48").stages
    for field in ("MODEL.NUM_OUTPUTS", "MODEL.PRETRAINED", "MODEL.EXTRA.FINAL_CONV_KERNEL",
                  "MODEL.EXTRA.STAGE1.NUM_RANCHES"):
        assert field in cfg.ignored_fields
    assert not any(f.startswith(("MODEL.NAME", "MODEL.EXTRA.STAGE2", "DATASET.NUM_CLASSES")) for f in cfg.ignored_fields)


def test_explicit_head_and_arguments_win_over_the_file():
    cfg = ht.HRNetConfig.from_yaml(OCR_FILE)
    with torch.device("meta"):
        seg = ht.create_model(cfg, head="segmentation")
        ocr = ht.create_model(cfg, num_classes=5, key_channels=64)
    assert type(seg) is ht.HRNetSegmentation and seg.last_layer[-1].out_channels == 19  # the file's classes
    assert ocr.cls_head.out_channels == 5
    assert ocr.ocr_distri_head.object_context_block.key_channels == 64


def test_yaml_sizes_and_fields_change_the_model(tmp_path):
    text = OCR_FILE.read_text().replace("MODEL:\n", "MODEL:\n  ALIGN_CORNERS: false\n  OCR:\n"
                                        "    MID_CHANNELS: 128\n    KEY_CHANNELS: 32\n    DROPOUT: 0.2\n", 1)
    path = tmp_path / "ocr_small.yaml"
    path.write_text(text.replace("NUM_CLASSES: 19", "NUM_CLASSES: 7"))
    cfg = ht.HRNetConfig.from_yaml(path)
    with torch.device("meta"):
        model = ht.create_model(cfg)
    assert model.conv3x3_ocr[0].out_channels == 128 and model.cls_head.out_channels == 7
    assert model.ocr_distri_head.object_context_block.key_channels == 32
    assert model.align_corners is False
    # the official seg_hrnet_ocr.py never reads DROPOUT (it hard-codes 0.05): listed, not used
    assert "MODEL.OCR.DROPOUT" in cfg.ignored_fields
    assert model.ocr_distri_head.conv_bn_dropout[-1].p == 0.05


def test_pose_file_reads_joints_kernel_and_pretrained_layers(tmp_path):
    name = next(n for n in HRNET_FILES if n.endswith("coco/hrnet/w32_256x192_adam_lr1e-3.yaml"))
    text = (DATA / "official_yaml" / name).read_text()
    cfg = ht.HRNetConfig.from_yaml(DATA / "official_yaml" / name)
    assert cfg.head == "pose" and cfg.head_kwargs == {"num_joints": 17}
    assert cfg.pretrained_layers[:2] == ("conv1", "bn1") and "stage4" in cfg.pretrained_layers
    path = tmp_path / "pose.yaml"
    path.write_text(text.replace("NUM_JOINTS: 17", "NUM_JOINTS: 16").replace("FINAL_CONV_KERNEL: 1", "FINAL_CONV_KERNEL: 3"))
    with torch.device("meta"):
        model = ht.create_model(ht.HRNetConfig.from_yaml(path))
    assert model.final_layer.out_channels == 16 and model.final_layer.kernel_size == (3, 3)


def test_the_readme_config_builds(tmp_path):
    path = Path(__file__).parents[1] / "assets" / "configs" / "seg_hrnet_w18_small_v1_shapes.yaml"
    if not path.is_file():
        pytest.skip("the README's example config is not shipped in this checkout")
    cfg = ht.HRNetConfig.from_yaml(path)
    model = ht.create_model(cfg)
    assert type(model) is ht.HRNetSegmentation and model.align_corners is False
    assert cfg.stages == ht.get_config("w18_small_v1").stages


# ----------------------------------------------------------------------- bad input
def write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def good_text():
    return OCR_FILE.read_text()


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "MODEL:\n  NAME: seg_hrnet\n  EXTRA: [1, 2\n", "broken.yaml")
    with pytest.raises(ValueError, match=r"broken\.yaml: not valid YAML: line \d+, column \d+") as info:
        ht.HRNetConfig.from_yaml(path)
    assert "<unicode string>" not in str(info.value)


def test_model_with_no_value(tmp_path):
    with pytest.raises(ValueError, match=r"empty\.yaml: MODEL has no sections \(it is None\)"):
        ht.HRNetConfig.from_yaml(write(tmp_path, "MODEL:\nDATASET:\n  NUM_CLASSES: 19\n", "empty.yaml"))


def test_num_blocks_not_a_list(tmp_path):
    text = good_text().replace("NUM_BLOCKS:\n      - 4\n      - 4\n      NUM_CHANNELS:\n      - 48\n      - 96",
                               "NUM_BLOCKS: 4\n      NUM_CHANNELS:\n      - 48\n      - 96", 1)
    assert text != good_text()
    with pytest.raises(ValueError, match=r"stage2\.num_blocks: STAGE2\.NUM_BLOCKS must be a list .*got 4"):
        ht.HRNetConfig.from_yaml(write(tmp_path, text))


def test_stage_null(tmp_path):
    text = good_text()
    start = text.index("    STAGE3:")
    end = text.index("    STAGE4:")
    with pytest.raises(ValueError, match=r"stage3: MODEL\.EXTRA\.STAGE3 is None, not a section"):
        ht.HRNetConfig.from_yaml(write(tmp_path, text[:start] + "    STAGE3: null\n" + text[end:]))


def test_final_conv_kernel_word(tmp_path):
    text = good_text().replace("FINAL_CONV_KERNEL: 1", "FINAL_CONV_KERNEL: one")
    with pytest.raises(ValueError, match=r"MODEL\.EXTRA\.FINAL_CONV_KERNEL must be 1 or 3, got 'one'"):
        ht.HRNetConfig.from_yaml(write(tmp_path, text))


def test_num_classes_word_and_align_corners_word(tmp_path):
    with pytest.raises(ValueError, match=r"DATASET\.NUM_CLASSES must be a positive integer, got 'nineteen'"):
        ht.HRNetConfig.from_yaml(write(tmp_path, good_text().replace("NUM_CLASSES: 19", "NUM_CLASSES: nineteen")))
    with pytest.raises(ValueError, match=r"MODEL\.ALIGN_CORNERS must be true or false, got 'maybe'"):
        ht.HRNetConfig.from_yaml(write(tmp_path, good_text().replace("MODEL:\n", "MODEL:\n  ALIGN_CORNERS: maybe\n")))


def test_directory_and_missing_file(tmp_path):
    write(tmp_path, good_text(), "one.yaml")
    with pytest.raises(IsADirectoryError, match=r"is a directory; pass the path of one experiment \.yaml file.*one\.yaml"):
        ht.HRNetConfig.from_yaml(tmp_path)
    with pytest.raises(FileNotFoundError, match="No such config file"):
        ht.HRNetConfig.from_yaml(tmp_path / "nope.yaml")


def test_a_dict_goes_to_from_dict():
    import yaml

    document = yaml.safe_load(good_text())
    with pytest.raises(TypeError, match=r"use HRNetConfig\.from_dict\(document\)"):
        ht.HRNetConfig.from_yaml(document)
    cfg = ht.HRNetConfig.from_dict(document)
    assert cfg.head == "ocr" and cfg.stages == ht.get_config("w48").stages
    assert ht.HRNetConfig.from_dict(document["MODEL"]["EXTRA"]).head is None  # a bare EXTRA section


def test_not_a_mapping_and_no_model(tmp_path):
    with pytest.raises(ValueError, match=r"list\.yaml: expected a mapping with a MODEL section"):
        ht.HRNetConfig.from_yaml(write(tmp_path, "- 1\n- 2\n", "list.yaml"))
    with pytest.raises(ValueError, match=r"found no MODEL section \(top-level keys: TRAIN\)"):
        ht.HRNetConfig.from_yaml(write(tmp_path, "TRAIN:\n  LR: 0.01\n"))


def test_numpy_num_classes_from_a_dict():
    import yaml

    document = yaml.safe_load(good_text())
    document["DATASET"]["NUM_CLASSES"] = np.int64(3)
    assert ht.HRNetConfig.from_dict(document).head_kwargs["num_classes"] == 3


# ------------------------------------------------------------------ input audit (findings 5, 14, 27)
SHIPPED_YAML = Path(__file__).parent.parent / "assets/configs/seg_hrnet_w18_small_v1_shapes.yaml"


@pytest.mark.parametrize("name, said", [("seg_hrnett", r"MODEL\.NAME 'seg_hrnett' is not one of the authors' HRNet "
                                                      r"models \(seg_hrnet, seg_hrnet_ocr, cls_hrnet, pose_hrnet\); "
                                                      r"did you mean 'seg_hrnet'\?"),
                                        ("Seg_HRNet_OCR", r"did you mean 'seg_hrnet_ocr'\?"),
                                        ("", r"MODEL\.NAME is empty: name the authors' model the file is for")])
def test_a_misspelt_or_empty_model_name_is_refused_with_the_known_names(tmp_path, name, said):
    """It used to be read as "no head": the file's 4 classes and ALIGN_CORNERS false were dropped in silence."""
    text = SHIPPED_YAML.read_text()
    assert "NAME: seg_hrnet\n" in text
    path = write(tmp_path, text.replace("NAME: seg_hrnet\n", f"NAME: {name}\n"), "typo.yaml")
    with pytest.raises(ValueError, match=rf"typo\.yaml: .*{said}.*leave the NAME line out"):
        ht.HRNetConfig.from_yaml(path)


def test_a_file_without_model_name_still_reads_as_a_backbone(tmp_path):
    path = write(tmp_path, SHIPPED_YAML.read_text().replace("  NAME: seg_hrnet\n", ""), "backbone.yaml")
    cfg = ht.HRNetConfig.from_yaml(path)
    assert cfg.head is None and cfg.stages == ht.HRNetConfig.from_yaml(SHIPPED_YAML).stages


def test_a_latin1_yaml_is_called_not_utf8_not_binary(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(("# café\n" + SHIPPED_YAML.read_text()).encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.yaml is not UTF-8 text \(byte 0xe9 at line 1, column 6\): save it "
                                         r"as UTF-8.*HRNetConfig\.from_dict") as info:
        ht.HRNetConfig.from_yaml(path)
    assert "binary" not in str(info.value)
    checkpoint = tmp_path / "model.yaml"
    torch.save({"w": torch.zeros(2)}, checkpoint)
    with pytest.raises(ValueError, match=r"model\.yaml is not a text YAML file \(a binary file, such as a checkpoint\)"):
        ht.HRNetConfig.from_yaml(checkpoint)


def test_an_empty_config_path_is_called_empty_not_the_current_folder():
    with pytest.raises(FileNotFoundError, match=r"the config path is empty \(''\): give the path of one experiment "
                                                r"\.yaml file"):
        ht.HRNetConfig.from_yaml("")
