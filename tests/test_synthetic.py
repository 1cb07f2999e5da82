"""The built-in synthetic world: deterministic, several sites, exact masks, unlabelled herd."""
from __future__ import annotations


import numpy as np
import pyarrow.parquet as pq

from bgshift import config, images, ingest, masks
from bgshift.ingest import synthetic
from conftest import digest


def world(tmp_path, name="w", **settings):
    cfg = config.validate({"dataset": {"kind": "synthetic", "synthetic": {"num_images": 12, **settings}}})
    out = tmp_path / name
    summary = ingest.run(cfg, out)
    return summary, out


def world_in(workdir, monkeypatch):
    """Generate into the relative folder `out` of workdir, as Snakemake runs would."""
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    ingest.run(config.validate({"dataset": {"kind": "synthetic", "synthetic": {"num_images": 12}}}), "out")
    return workdir / "out"


def test_same_seed_gives_byte_identical_world(tmp_path, monkeypatch):
    a = world_in(tmp_path / "a", monkeypatch)
    b = world_in(tmp_path / "b", monkeypatch)
    ha, hb = digest(a), digest(b)
    assert ha == hb and len(ha) == 12 + 5  # images + four tables + summary
    pixels_a, *_ = synthetic.render(0, 0, config.validate({"dataset": {"kind": "synthetic"}})["dataset"]["synthetic"])
    pixels_b, *_ = synthetic.render(0, 1, config.validate({"dataset": {"kind": "synthetic"}})["dataset"]["synthetic"])
    assert not np.array_equal(pixels_a, pixels_b)  # the seed matters


def test_sites_differ_in_texture_and_light(tmp_path):
    _, out = world(tmp_path, sites=["meadow", "quarry", "dusk"])
    rows = pq.read_table(out / "images.parquet").to_pylist()
    assert {r["group"] for r in rows} == {"meadow", "quarry", "dusk"}
    mean_colour = {}
    for r in rows:
        mean_colour.setdefault(r["group"], []).append(images.read_rgb(r["path"])[120:].reshape(-1, 3).mean(0))
    means = {site: np.mean(v, 0) for site, v in mean_colour.items()}
    assert np.abs(means["meadow"] - means["quarry"]).sum() > 60
    assert means["dusk"].sum() < means["meadow"].sum()  # darker light


def test_instances_have_exact_disjoint_masks_and_tight_boxes(tmp_path):
    summary, out = world(tmp_path, classes=["sheep", "crate", "cone", "ball"], unlabelled_share=0.5, background_objects=[2, 4])
    anns = pq.read_table(out / "annotations.parquet").to_pylist()
    assert summary["categories"] == 4 and summary["annotations"]["rejected"] == 0
    assert 0 < summary["annotations"]["unlabelled"] < summary["annotations"]["ingested"]
    by_image = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    for group in by_image.values():
        stack = np.stack([masks.decode(a["segmentation"]) for a in group])
        assert stack.sum(0).max() == 1  # visible masks never overlap
        for a, m in zip(group, stack):
            assert masks.box_of(m) == a["bbox"] and a["area"] == m.sum()
    # the unlabelled ones are the herd in the back: small and high in the picture
    unlabelled = [a for a in anns if not a["labelled"]]
    labelled = [a for a in anns if a["labelled"]]
    assert np.mean([a["bbox"][1] for a in unlabelled]) < np.mean([a["bbox"][1] for a in labelled])
    assert np.mean([a["area"] for a in unlabelled]) < np.mean([a["area"] for a in labelled])


def test_unlabelled_share_zero_labels_everything(tmp_path):
    summary, _ = world(tmp_path, unlabelled_share=0.0)
    assert summary["annotations"]["unlabelled"] == 0
