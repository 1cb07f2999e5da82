"""Config validation: defaults from the schema, clear messages, documented keys."""
from __future__ import annotations

import re

import pytest

from bgshift import config
from conftest import REPO


def test_defaults_are_filled_from_the_schema():
    cfg = config.validate({"dataset": {"kind": "synthetic"}})
    assert cfg["seed"] == 0 and cfg["ingest"]["invalid_boxes"] == "clip"
    assert cfg["dataset"]["synthetic"]["sites"] == ["meadow", "quarry"]


def test_unknown_key_is_named_with_the_allowed_ones():
    with pytest.raises(config.ConfigError, match=r"unknown key\(s\) \['invalid_box'\] under ingest; allowed: \['invalid_boxes'"):
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
    text = config.reference_markdown()
    rows = re.findall(r"^\| `([^`]+)` \|(.*)\|(.*)\|(.*)\|$", text, flags=re.M)
    assert len(rows) > 20
    undocumented = [key for key, _, _, meaning in rows if not meaning.strip()]
    assert not undocumented, f"schema keys without a description: {undocumented}"
    assert (REPO / "config" / "README.md").read_text() == text, "run `bgshift config-doc > config/README.md`"


def test_demo_config_is_valid():
    config.load(REPO / "config" / "config.yaml")
