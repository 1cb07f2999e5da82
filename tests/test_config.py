"""Config validation: defaults from the schema, clear messages, documented keys."""
from __future__ import annotations

import re
import time

import pytest
import yaml

from bgshift import config, config_doc, metric_names, variants
from conftest import REPO, copy_workflow, planned_jobs, snakemake


def test_defaults_are_filled_from_the_schema():
    cfg = config.validate({"dataset": {"kind": "synthetic"}})
    assert cfg["seed"] == 0 and cfg["ingest"]["invalid_boxes"] == "clip"
    assert cfg["dataset"]["synthetic"]["sites"] == ["meadow", "quarry"]


def test_unknown_key_is_named_with_the_allowed_ones():
    with pytest.raises(config.ConfigError, match=r"unknown key\(s\) \['invalid_box'\] under ingest; allowed: \['annotation_frame', 'invalid_boxes'"):
        config.validate({"dataset": {"kind": "synthetic"}, "ingest": {"invalid_box": "clip"}})


def test_wrong_type_and_bad_choice_are_named():
    with pytest.raises(config.ConfigError, match=r"shard_size: expected integer, got str 'ten'"):
        config.validate({"dataset": {"kind": "synthetic"}, "shard_size": "ten"})
    with pytest.raises(config.ConfigError, match=r"dataset.kind: 'cityscapes' is not one of"):
        config.validate({"dataset": {"kind": "cityscapes"}})


def test_missing_input_path_is_named(tmp_path):
    with pytest.raises(config.ConfigError, match=r"dataset.annotations: path '.*nope.json' does not exist"):
        config.validate({"dataset": {"kind": "coco", "images": str(tmp_path), "annotations": str(tmp_path / "nope.json")}})
    with pytest.raises(config.ConfigError, match=r"dataset.data_yaml is required"):
        config.validate({"dataset": {"kind": "yolo"}})


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("dataset: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(evil)


def test_every_key_is_described_and_the_reference_is_current():
    text = config_doc.reference_markdown()
    rows = re.findall(r"^\| `([^`]+)` \|(.*)\|(.*)\|(.*)\|$", text, flags=re.M)
    assert len(rows) > 20
    undocumented = [key for key, _, _, meaning in rows if not meaning.strip()]
    assert not undocumented, f"schema keys without a description: {undocumented}"
    assert (REPO / "config" / "README.md").read_text() == text, "run `bgshift config-doc > config/README.md`"


def test_demo_config_is_valid():
    config.load(REPO / "config" / "config.yaml")


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["segment"].update({"qc": {"min_fill_ratio": 0.9, "max_fill_ratio": 0.5}}), "min_fill_ratio 0.9 is above max_fill_ratio"),
    (lambda c: c["splits"].update({"ratios": {"train": 0, "val": 0, "test": 0}}), "every share of .* is 0"),
    (lambda c: c["dataset"]["synthetic"].update({"objects_per_image": [5, 1]}), "reversed range"),
    # numbers that validated, then crashed a later job (OverflowError, KeyError, cv2 bad_alloc)
    (lambda c: c.update({"seed": 2**64}), r"seed: 18446744073709551616 is out of range"),
    (lambda c: c.update({"seed": -1}), r"seed: -1 is less than the minimum of 0"),
    (lambda c: c["train"].update({"seeds": [0, 2**32]}), r"train.seeds.1: 4294967296 is greater than the maximum"),
    (lambda c: c["splits"].update({"ratios": {"train": float("inf"), "val": 0.2}}), r"splits.ratios.train: inf is not a finite number"),
    (lambda c: c["drops"].update({"f": {"kind": "fraction", "fraction": float("nan")}}), r"drops.f.fraction: nan is not a finite number"),
    (lambda c: c["variants"]["catalog"].update({"bg_blur": {"sigma": [float("inf")]}}), r"bg_blur.sigma.0: inf is not a finite number"),
    (lambda c: c["variants"].update({"feather": 1e300}), r"feather: 1e\+300 is greater than the maximum of 100"),
    (lambda c: c["evaluate"].update({"window": {"start": 9, "stop": 3}}), r"evaluate.window: start 9 is after stop 3"),
    (lambda c: c["train"]["models"].update({"Yolo": {"family": "yolo"}, "yolo": {"family": "yolo"}}), r"train.models: 'Yolo' and 'yolo' differ only in case"),
    (lambda c: c["sets"]["train"].update({"a" * 20: {"variants": ["original"]}}), r"sets.train: 'a{20}' ends in 'a' repeated 20 times"),
    (lambda c: c["drops"].update({"x" + "ab" * 20: {"kind": "normal"}}), r"drops: 'x(ab){20}' ends in 'ab' repeated 20 times"),
    (lambda c: c["train"]["models"].update({"y": {"family": "yolo", "augment": {"mosaic": 0.5, "name": "x", "project": "/tmp"}}}),
     r"train.models.y.augment: \['name', 'project'\] are set by bgshift itself"),
])
def test_configs_that_could_only_fail_late_are_refused(edit, message):
    cfg = config.validate({"dataset": {"kind": "synthetic"}})
    edit(cfg)
    with pytest.raises(config.ConfigError, match=message):
        config.validate(cfg)


def test_an_annotations_folder_and_a_missing_voc_folder_are_named(tmp_path):
    with pytest.raises(config.ConfigError, match="dataset.annotations: .* is a folder; name the file"):
        config.validate({"dataset": {"kind": "coco", "images": str(tmp_path), "annotations": str(tmp_path)}})
    (tmp_path / "Annotations").mkdir()
    with pytest.raises(config.ConfigError, match=r"dataset.images_dir: folder .*/photos does not exist"):
        config.validate({"dataset": {"kind": "voc", "root": str(tmp_path), "images_dir": "photos"}})


def test_schema_has_no_stray_keys_from_unquoted_commas():
    """In a YAML flow mapping an unquoted comma ends a description and turns the rest into keys."""
    import yaml

    keywords = {"description", "type", "default", "enum", "minimum", "maximum", "exclusiveMinimum", "items", "minItems",
                "maxItems", "properties", "additionalProperties", "required", "oneOf", "$ref", "const", "pattern",
                "propertyNames", "uniqueItems", "if", "then", "else", "allOf", "unevaluatedProperties", "maxLength"}
    stray = []

    def walk(node, path):
        if isinstance(node, dict):
            if path and ("description" in node or "type" in node) and path[-1] != "properties":
                stray.extend(f"{'.'.join(path)}: {k}" for k in node if k not in keywords)
            for key, value in node.items():
                walk(value, path + [str(key)])

    walk(yaml.safe_load(config.SCHEMA_PATH.read_text()), [])
    assert not stray, stray


def test_command_line_help_of_every_stage_prints():
    """`bgshift --help` and each stage's help format (a stray % in a help text broke the first)."""
    from bgshift.cli import COMMANDS, build_parser

    parser = build_parser()
    for argv in [["--help"]] + [[name, "--help"] for name in COMMANDS]:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(argv)
        assert exit_.value.code == 0, argv


def test_a_table_metric_no_planned_model_writes_stops_the_plan(tmp_path):
    """A typo in evaluate.table_metrics used to be dropped without a word: now the dry run stops,
    naming it and the metrics the planned models write; per-class names and null are accepted."""
    workdir = copy_workflow(tmp_path / "wf")
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg.setdefault("evaluate", {})["table_metrics"] = ["AP50", "AP_50"]
    (workdir / "typo.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(workdir, "--configfile", "typo.yaml", "-n", check=False)
    assert proc.returncode != 0 and not (workdir / "results").exists()
    assert re.search(r"evaluate.table_metrics: unknown metric 'AP_50'; the planned models \(detection\) write AP, AP50, AP75, APs",
                     proc.stdout + proc.stderr), proc.stderr[-2000:]
    metric_names.check(["AP/sheep", "tide/Bkg", "count_mae/crate", "AR100"], {"detection"}, "x")
    with pytest.raises(config.ConfigError, match=r"unknown metric 'accuracy'"):
        metric_names.check(["accuracy"], {"detection"}, "x")
    with pytest.raises(config.ConfigError, match=r"unknown metric 'AP/'"):
        metric_names.check(["AP/"], {"detection", "classification"}, "x")
    assert metric_names.usual({"accuracy", "AP50", "tide/Bkg", "AP"}) == ["AP", "AP50", "accuracy"]


def test_a_yaml_alias_bomb_is_refused_in_a_second_not_expanded(tmp_path):
    """Nine anchors, each nine of the one before: 9^9 values once expanded. It used to take
    40-54 s and 3 GB before a MemoryError."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{k}: &a{k} [{', '.join(['*a' + str(k - 1)] * 9)}]" for k in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("dataset: {kind: synthetic}\nextra:\n" + "\n".join("  " + line for line in lines) + "\n")
    started = time.perf_counter()
    with pytest.raises(config.ConfigError, match=r"expands to more than 1,000,000 values"):
        config.load(bomb)
    assert time.perf_counter() - started < 5


def test_periodic_names_are_refused_exactly_where_snakemake_would_stop():
    """config.PERIODIC against Snakemake's own detector: the names it refuses are the ones that
    would raise PeriodicWildcardError at DAG build, and no others."""
    from snakemake.io import PeriodicityDetector

    detector = PeriodicityDetector()
    names = ["a" * 19, "a" * 20, "b" + "a" * 20 + "b", "x" + "ab" * 20, "x" + "ab" * 19 + "a", "abc" * 20, "abc" * 19 + "ab",
             "mixed_rand", "m" + "01" * 30, "seed" + "7" * 25, "a1" * 10 + "a" * 19]
    for name in names:
        assert bool(config.PERIODIC.search(name)) == (detector.is_periodic(name) is not None), name
    cfg = config.validate({"dataset": {"kind": "synthetic"}})
    cfg["variants"]["catalog"]["bg_color"] = {"colours": {"z" * 20: [1, 2, 3]}}
    with pytest.raises(config.ConfigError, match=r"variants.catalog.bg_color \(a variant name it expands to\): 'bg_color_z{20}' ends in 'z' repeated"):
        variants.expand(cfg["variants"])


def test_a_list_where_a_model_setting_takes_one_value_is_a_grid_of_models():
    """The BRL paper's Table 3 ablation is one entry: confusion_weight and lr lists expand to their
    product, named by key and value; a setting whose own type is a list (anchor_sizes) is not a grid."""
    anchors = [16, 32, 64, 128, 256]
    cfg = config.validate({"dataset": {"kind": "synthetic"}, "train": {"models": {
        "brl": {"family": "retinanet", "loss": "brl", "confusion_weight": [1.0, 0.5, 0.01], "lr": [0.01, 0.02],
                "anchor_sizes": anchors},
        "yolo": {"family": "yolo"}}}})
    models = cfg["train"]["models"]
    assert list(models) == [f"brl_confusion_weight{w}_lr{lr}" for w in ("1", "0.5", "0.01") for lr in ("0.01", "0.02")] + ["yolo"]
    assert models["brl_confusion_weight0.5_lr0.02"]["confusion_weight"] == 0.5 and models["brl_confusion_weight0.5_lr0.02"]["lr"] == 0.02
    assert all(m["anchor_sizes"] == anchors for name, m in models.items() if name != "yolo")
    assert config.validate(cfg) == cfg  # an expanded config validates to itself (what the rules pass on)


@pytest.mark.parametrize("models, message", [
    ({"m": {"family": "frcnn", "lr": [0.01, 0.02]}, "m_lr0.02": {"family": "frcnn"}}, r"train.models.m: its grid names 'm_lr0.02', which another model"),
    ({"m": {"family": "frcnn", "weights": ["none", "a b.pt"]}}, r"train.models.m \(a model its grid expands to\): 'm_weightsa b.pt' is not a safe name"),
    ({"m": {"family": "frcnn", "lr": [0.01, "fast"]}}, r"train.models.m_lrfast.lr: expected number"),
])
def test_a_model_grid_that_cannot_name_its_models_or_values_is_refused(models, message):
    with pytest.raises(config.ConfigError, match=message):
        config.validate({"dataset": {"kind": "synthetic"}, "train": {"models": models}})


def test_a_model_grid_plans_one_training_run_per_value(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "grid.yaml").write_text(yaml.safe_dump({
        "dataset": {"kind": "synthetic", "synthetic": {"num_images": 12}}, "segment": {"method": "gt"},
        "variants": {"catalog": {"original": {}}}, "sets": {"train": {"original": {"variants": ["original"]}}, "test": ["original"]},
        "train": {"models": {"brl": {"family": "retinanet", "loss": "brl", "confusion_weight": [1.0, 0.5, 0.25, 0.1, 0.01]}},
                  "seeds": [0, 1]}}))
    planned = planned_jobs(workdir, "--configfile", "grid.yaml")
    assert planned["train"] == planned["detect"] == planned["score"] == 10  # 5 models x 1 set x 2 seeds


def test_the_results_page_shows_the_config_without_its_run_only_settings():
    """What made the results, as the page shows it: threads, devices, memory bounds, decode batch,
    review-picture sizes and a model's workers left out (editing them reruns nothing), the rest kept."""
    cfg = config.load(REPO / "config" / "config.yaml")
    from bgshift.run_settings import result_settings

    shown = result_settings(cfg)
    assert "threads" not in shown["train"] and "device" not in shown["train"] and "mem_mb" not in shown["train"]
    assert "batch_size" not in shown["segment"]["deeplabv3"] and "contact_sheet" not in shown["variants"]
    assert "group_mb" not in shown["variants"] and all("workers" not in m for m in shown["train"]["models"].values())
    assert shown["train"]["models"]["yolo_n"]["epochs"] == cfg["train"]["models"]["yolo_n"]["epochs"]
    assert shown["findings"] == cfg["findings"] and shown["variants"]["catalog"] == cfg["variants"]["catalog"]
    assert "threads" in cfg["train"]  # the config itself is untouched
