import gc
import os
import sys

# nbformat imports jsonschema, which imports rfc3987_syntax when it is installed (it comes with
# JupyterLab's dependencies); that module builds a grammar at import, about 4 s of every test run,
# for an "iri" format check no test uses. Kernels and servers run in other processes, unaffected.
sys.modules.setdefault("rfc3987_syntax", None)
# Never touch the network from tests: hub downloads must fail fast and cleanly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# Docker's Python images set PYTHONDONTWRITEBYTECODE (this machine's does): pytest then parses and
# rewrites the asserts of every test file again in each xdist worker, about 2.8 s of each worker's
# start in the fast loop. Their bytecode goes to __pycache__/, which git ignores.
sys.dont_write_bytecode = False

import pytest  # noqa: E402


def pytest_configure(config):
    # The xdist controller (`-n 2`) runs no test: importing torch there (1.5 s, more on a busy
    # machine) only delays the start of the workers, so torch is imported where tests run.
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    import torch

    # Under pytest-xdist (`-n 2`, the fast loop) the workers share the cores instead of each taking two.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))


# Markers by where a test lives, so `pytest -m "not slow"` is the fast inner loop and the
# full suite (the README's test command) still runs everything.
#   notebook: executes lessons in a kernel; browser: drives JupyterLab in Chromium;
#   slow: both of the above, plus the tests listed below: those over a few seconds, sweeps over every
#   variant, and some over 0.6 s whose cheaper sibling stays (measured with `pytest --durations=0`).
NOTEBOOK_FILES = {"test_notebooks.py", "test_widgets_kernel.py"}
BROWSER_FILES = {"test_browser.py"}
SLOW_TESTS = (
    # file name, and a piece of the test name ("" for the whole file)
    ("test_course.py", "really_starts"),  # a real JupyterLab server
    ("test_course.py", "open_run_save"),  # runs lesson 00 in a kernel
    ("test_notebooks.py", "wheel_carries"),  # builds and installs a wheel
    ("test_notebooks.py", "never_returning"),  # a kernel that waits out the time limit
    ("test_widgets.py", "in_a_kernel"),  # starts a kernel
    ("test_train.py", "torchrun"),  # two processes
    ("test_bench.py", "quick_prints"),  # benchmarks every variant
    ("test_lesson09.py", "scores_as_claimed"),  # scores 256 held-out scenes
    ("test_deploy.py", "export_program_and_onnx"),  # one export per head
    # sweeps over every variant or every official file: the faithfulness evidence, full suite only
    ("test_official_parity.py", ""),
    ("test_published_figures.py", ""),
    ("test_yaml.py", ""),
    ("test_bench.py", ""),
    ("test_features.py", "equal_timm"),
    ("test_inspect.py", "cost_rows_add_up"),
    ("test_weights.py", "every_published_variant"),
    ("test_weights.py", "never_answers"),  # waits out the hub probe's limit
    ("test_train.py", "cli_writes"),
    ("test_deploy.py", "compile_traces"),
    ("test_deploy.py", "gpu_check_refuses"),
    ("test_ocr.py", "every_variant"),
    ("test_ocr.py", "cost_breakdown"),
    ("test_deploy.py", "fast_matches_eager"),  # folds and runs every head
    ("test_train.py", "cli_checkpoint"),  # trains through the CLI
    ("test_train.py", "old_format_checkpoint"),
    ("test_train.py", "scores_as_claimed"),  # scores the held-out scenes
    ("test_features.py", "feature_info_equals_timm"),
    ("test_weights.py", "other_variant_loads"),
    # measured 1-5 s each on 2 cores (pytest --durations=0, 2026-12-03)
    ("test_train.py", "resume_continues"),  # trains twice
    ("test_zh_figures.py", ""),  # draws every figure in Chinese and checks each glyph
    ("test_zh.py", "speaks_chinese"),  # every exercise's every wrong answer, again in Chinese
    ("test_readme.py", "block_runs_as_pasted"),  # runs each README block
    ("test_capstone.py", "official_ones_in_order"),
    ("test_inspect.py", "cost_rows_match_hand_counts"),
    ("test_inspect.py", "equals_its_meta_twin"),
    ("test_ocr.py", "bench_knows"),
    ("test_ocr.py", "trains_on_cpu"),
    ("test_viz.py", "feature_maps_one_panel"),
    ("test_viz.py", "[w48"),
    ("test_lesson09.py", "attention_shape_answer"),
    ("test_train.py", "checkpoint_format_is_unchanged"),  # the last user of the CLI training fixture
    ("test_viz.py", "cost_bars_match"),
    ("test_deploy.py", "is_tracing_only_while_tracing"),
    ("test_deploy.py", "size_rules_per_head"),
    # 2.4 s: all 35 catalogued wrong networks, each through the whole capstone check. The fast loop still
    # checks each of them: test_capstone.py runs every NETWORK_MISTAKES slip (its stage and its message) and
    # the answer returning an int; test_checker_robustness.py's nn.Identity() takes the no-keys path.
    ("test_exercises.py", "typical_mistakes_get_their_message[11-capstone_network]"),
    # 2.3-3.3 s each with the machine slow (pytest --durations=0, 2026-12-07): three start another Python,
    # which imports torch again; the fourth renders lessons 01-05's catalogued wrong answers in Chinese, as
    # test_zh.py's speaks_chinese does for every lesson (also full suite only)
    ("test_checker_robustness.py", "stopped_before_python_shuts_down"),
    ("test_gpu_paths.py", "gpu_exercises_check_builds"),
    ("test_versions.py", "old_torch_warns_once"),
    ("test_checker_audit_0105.py", "new_messages_speak_chinese"),
    # 0.6-1.2 s each in the fast loop (pytest -m "not slow" -n 2 --durations=0, 2026-12-07 21:12 UTC), each with a
    # cheaper sibling that stays: the same check on a smaller network, head or figure, or the same path once
    ("test_viz.py", "resolution_over_depth_compares_three_networks"),  # fits_a_short_network stays
    ("test_viz.py", "n_by_n_labelled_cells[w18-stage3"),  # [w18-stage2-2] stays
    ("test_viz.py", "draws_the_sides_a_forward_gives[side2]"),  # [250] and [512] stay
    ("test_model.py", "fixed_factor_fusion_takes_exactly_the_sides_the_official_code_takes[classification]"),
    ("test_train_pretrained.py", "head_stays_random[ocr]"),  # [segmentation] and [pose] stay
    ("test_weights.py", "timm_classifier_with_other_classes"),  # offline_uses_the_local_cache stays
    ("test_checker_robustness.py", "does_not_reach_the_checker[11-capstone_network]"),  # the other 16 stay
    ("test_checker_robustness.py", "drops_objects_with_a_finaliser"),  # ten loops; loops_forever_is_stopped stays
    ("test_fuzz_model.py", "compile_without_a_graph_break"),  # torch.compile (compile_traces is slow too)
    ("test_deploy.py", "symbolic_trace_and_jit_trace_match_eager"),  # two traces of a network
    ("test_deploy.py", "bench_deploy_small_prints_every_way"),  # times every way, ONNX included
    ("test_bad_input_io.py", "opset_newer_than_the_exporter"),  # an ONNX export for one refusal
)


def pytest_unconfigure(config):
    # Every test has run and reported. At exit the interpreter's last garbage collections walk all the
    # objects the tests made (models, figures: about 1.2 s per process, measured, and under xdist the run
    # waits for both workers to exit); frozen, they are left to the operating system, as at any exit.
    gc.freeze()


def pytest_collection_modifyitems(config, items):
    for item in items:
        file = item.path.name
        if (file in NOTEBOOK_FILES and "execute" in item.name) or file in BROWSER_FILES:
            item.add_marker(pytest.mark.slow)
        if file in NOTEBOOK_FILES:
            item.add_marker(pytest.mark.notebook)
        if file in BROWSER_FILES:
            item.add_marker(pytest.mark.browser)
        if any(file == f and part in item.name for f, part in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
