"""The built-in synthetic world: deterministic, several sites, exact masks, unlabelled herd."""
from __future__ import annotations


import numpy as np
import pyarrow.parquet as pq
import pytest

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
    assert ha == hb and len(ha) == 12 + 6  # images + factors + four tables + summary
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


def test_confounder_strength_ties_classes_to_sites_and_every_image_records_its_factors(tmp_path):
    sites, classes = ["meadow", "quarry"], ["sheep", "crate", "cone"]
    _, out = world(tmp_path, "strong", num_images=40, sites=sites, classes=classes, confounder_strength=1.0, objects_per_image=[2, 3])
    factors = pq.read_table(out / "world" / "factors.parquet").to_pylist()
    assert [f["image_id"] for f in factors] == list(range(1, 41))
    assert {f["site"]: f["home_class"] for f in factors} == {"meadow": "sheep", "quarry": "crate"}
    assert all(f["front_home_class"] == f["front_objects"] for f in factors)
    site_of = {f["image_id"]: f["site"] for f in factors}
    labelled = [a for a in pq.read_table(out / "annotations.parquet").to_pylist() if a["labelled"]]
    assert {(site_of[a["image_id"]], a["category_id"]) for a in labelled} == {("meadow", 1), ("quarry", 2)}
    _, out = world(tmp_path, "none", num_images=40, sites=sites, classes=classes, confounder_strength=0.0, objects_per_image=[2, 3])
    labelled = [a for a in pq.read_table(out / "annotations.parquet").to_pylist() if a["labelled"]]
    assert len({(site_of[a["image_id"]], a["category_id"]) for a in labelled}) == 6  # every class on every site


def test_the_herd_is_labelled_on_fully_labelled_sites_only(tmp_path):
    _, out = world(tmp_path, num_images=20, fully_labelled_sites=["quarry"], background_objects=[2, 4])
    factors = pq.read_table(out / "world" / "factors.parquet").to_pylist()
    assert all(f["herd_unlabelled"] == 0 for f in factors if f["site"] == "quarry")
    assert all(f["herd_unlabelled"] == f["herd"] > 0 for f in factors if f["site"] == "meadow")
    site_of = {f["image_id"]: f["site"] for f in factors}
    unlabelled = [a for a in pq.read_table(out / "annotations.parquet").to_pylist() if not a["labelled"]]
    assert unlabelled and {site_of[a["image_id"]] for a in unlabelled} == {"meadow"}


def test_object_scale_and_count_are_keys(tmp_path):
    _, out = world(tmp_path, num_images=10, height=200, object_scale=[0.1, 0.12], objects_per_image=[4, 4], background_objects=[0, 0])
    factors = pq.read_table(out / "world" / "factors.parquet").to_pylist()
    sizes = [s for f in factors for s in f["object_size_px"]]
    assert len(sizes) == 40 and min(sizes) >= 20 and max(sizes) <= 24
    assert all(f["herd"] == 0 for f in factors)


@pytest.mark.parametrize("key, value, message", [
    ("objects_per_image", [5, 1], "objects_per_image: \\[5, 1\\] is a reversed range"),
    ("object_scale", [0.4, 0.2], "object_scale: \\[0.4, 0.2\\] is a reversed range"),
    ("fully_labelled_sites", ["dusk"], "fully_labelled_sites: \\['dusk'\\] are not among sites"),
    ("home_classes", {"meadow": "ball"}, "home_classes.meadow: .* one of classes"),
])
def test_impossible_worlds_are_refused_before_any_job(key, value, message):
    with pytest.raises(config.ConfigError, match=message):
        config.validate({"dataset": {"kind": "synthetic", "synthetic": {key: value}}})


def test_a_labelled_context_class_lies_under_most_objects_of_its_class(tmp_path):
    """context: a pond (its own category, after the classes) under each front ball with
    probability 0.9, elsewhere in one image without a ball in ten; the objects stand on it
    (drawn after, so its mask is what they leave visible). Without it the world is unchanged."""
    settings = {"num_images": 60, "classes": ["sheep", "crate", "ball"], "background_objects": [0, 0], "objects_per_image": [1, 2]}
    _, plain = world(tmp_path, "plain", **settings)
    _, out = world(tmp_path, "ponds", **settings, context={"beside": "ball"})
    categories = pq.read_table(out / "categories.parquet").to_pylist()
    assert [(c["category_id"], c["name"]) for c in categories] == [(1, "sheep"), (2, "crate"), (3, "ball"), (4, "pond")]
    annotations = pq.read_table(out / "annotations.parquet").to_pylist()
    balls = [a for a in annotations if a["category_id"] == 3]
    ponds = [a for a in annotations if a["category_id"] == 4]
    assert all(p["labelled"] for p in ponds)

    def under(ball, pond) -> bool:  # the ball's foot lies inside the pond's box
        bx, by, bw, bh = ball["bbox"]
        px, py, pw, ph = pond["bbox"]
        return ball["image_id"] == pond["image_id"] and px <= bx + bw / 2 <= px + pw and py <= by + bh <= py + ph + 2

    standing = sum(any(under(b, p) for p in ponds) for b in balls)
    assert len(balls) >= 15 and standing >= 0.75 * len(balls)
    with_ball = {b["image_id"] for b in balls}
    elsewhere = {p["image_id"] for p in ponds} - with_ball
    assert len(elsewhere) <= 0.3 * len({a["image_id"] for a in annotations} - with_ball)
    factors = pq.read_table(out / "world" / "factors.parquet").to_pylist()
    assert sum(f["context_regions"] for f in factors) == len(ponds)
    plain_annotations = pq.read_table(plain / "annotations.parquet").to_pylist()
    assert not any(a["category_id"] == 4 for a in plain_annotations)
    assert pq.read_table(plain / "categories.parquet").num_rows == 3
