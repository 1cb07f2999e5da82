"""Variant engine: pixel invariants per family, annotations follow pixels, provenance, determinism."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bgshift import config, drops, images, ingest, masks, segment
from bgshift.variants import catalog, context, drawing, engine, expand, families, manifest, objects
from conftest import REPO, digest

DEMO = config.load(REPO / "config" / "config.yaml")
SCENES = str(REPO / "resources" / "backgrounds")
POOL = REPO / "resources" / "pool"


def demo_variants(**overrides):
    return {**DEMO["variants"], "scenes_dir": SCENES, **overrides}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """8 synthetic scenes (gt masks, unlabelled herd), segmented into one shard."""
    root = tmp_path_factory.mktemp("world")
    cfg = config.validate({"seed": 3, "shard_size": 8, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 8, "unlabelled_share": 0.7}},
                           "segment": {"method": "gt"}, "drops": DEMO["drops"],
                           "variants": demo_variants(catalog={**DEMO["variants"]["catalog"], "bg_pool": {"folder": str(POOL)}})})
    ingest.run(cfg, root / "ingest")
    drops.run(cfg, root / "ingest" / "annotations.parquet", root / "drops.parquet", root / "tables")
    segment.run_shard(cfg, root / "ingest", 0, root / "seg" / "00000.parquet", root / "seg" / "stats.parquet")
    segment.summarise([root / "seg" / "00000.parquet"], [root / "seg" / "stats.parquet"], root / "ingest" / "categories.parquet",
                      root / "ingest" / "annotations.parquet", root / "seg", root / "tables")
    return cfg, root


def make_job(cfg, root):
    return engine.ShardJob(cfg, root / "ingest", root / "seg" / "00000.parquet", 0,
                           root / "seg" / "summary.json", root / "seg" / "mean_background.png", root / "drops.parquet")


def test_demo_config_has_at_least_30_uniquely_named_variants():
    names = [s.name for s in expand(demo_variants())]
    assert len(names) >= 30 and len(set(names)) == len(names)
    for expected in ("bg_blur_s5", "bg_blur_s15", "bg_blur_s31", "bg_crop_m16", "bg_color_red", "bg_mean_pixel",
                     "bg_scene_beach", "mixed_rand_f2", "unl_patch", "only_bg_t"):
        assert expected in names


def test_grid_expansion_names_and_errors(tmp_path):
    specs = expand({"feather": 0, "scenes_dir": SCENES, "catalog": {"bg_blur": {"sigma": [5, 15], "feather": [0, 3]}, "bg_crop": {"margin": 8}}})
    assert [s.name for s in specs] == ["bg_blur_s5", "bg_blur_s5_f3", "bg_blur_s15", "bg_blur_s15_f3", "bg_crop"]
    assert specs[1].params["sigma"] == 5 and specs[1].params["feather"] == 3.0
    with pytest.raises(ValueError, match=r"no scene image for \['mars'\]"):
        expand({"feather": 0, "scenes_dir": SCENES, "catalog": {"bg_scene": {"scenes": ["mars"]}}})
    clash = {"feather": 0, "scenes_dir": SCENES, "catalog": {"bg_blur": {"sigma": [5, 5]}}}
    with pytest.raises(ValueError, match=r"duplicate variant names \['bg_blur_s5'\]"):
        expand(clash)


def composites(cfg, root):
    """(spec, ctx, result) for every variant of every image, before JPEG encoding."""
    job = make_job(cfg, root)
    for image_id in job.shard_images:
        ctx = job.context(image_id)
        for spec in job.specs:
            yield spec, ctx, families.FAMILIES[spec.family].draw(ctx, spec.params, engine.variant_rng(3, image_id, spec.name))


def test_pixel_invariants_of_every_family(world):
    cfg, root = world
    seen = Counter()
    for spec, ctx, result in composites(cfg, root):
        if spec.params["feather"]:
            continue
        fg = ctx.foreground.astype(bool)
        out = result.pixels
        record = families.FAMILIES[spec.family]
        assert (result.objects == "none") == record.background_only, spec.name  # the record says what the drawing does
        if record.keeps == "foreground":
            assert np.array_equal(out[fg], ctx.pixels[fg]), spec.name  # objects untouched
            assert not np.array_equal(out[~fg], ctx.pixels[~fg]), spec.name  # background changed
        if record.keeps == "background":
            assert np.array_equal(out[~fg], ctx.pixels[~fg]) and (out[fg] == 0).all(), spec.name
        if spec.family in ("only_bg_b", "only_bg_t"):
            boxes = ctx.boxes_mask.astype(bool)
            assert np.array_equal(out[~boxes], ctx.pixels[~boxes]), spec.name
        if spec.family.startswith("unl_"):
            unl = ctx.hidden_mask(ctx.hidden(spec.params.get("drop"))).astype(bool)
            assert np.array_equal(out[~unl], ctx.pixels[~unl]), spec.name  # labelled objects and the rest untouched
            if unl.any():
                assert not np.array_equal(out[unl], ctx.pixels[unl]), spec.name
        if spec.family == "bg_crop":
            x0, y0, x1, y1 = result.crop or (0, 0, ctx.shape[1], ctx.shape[0])
            assert np.array_equal(out, ctx.pixels[y0:y1, x0:x1]) and (result.crop is not None or out is ctx.pixels)
        if spec.family == "original":
            assert np.array_equal(out, ctx.pixels)
        seen[spec.family] += 1
    assert set(seen) == set(families.FAMILIES)


def test_feather_softens_only_the_edge(world):
    cfg, root = world
    job = make_job(cfg, root)
    ctx = job.context(job.shard_images[0])
    colour = {"colour": [255, 0, 0], "label": "red", "family": "bg_color"}
    hard = catalog.bg_color(ctx, {**colour, "feather": 0.0}, None).pixels
    soft = catalog.bg_color(ctx, {**colour, "feather": 2.0}, None).pixels
    import cv2

    near_edge = cv2.dilate(ctx.foreground, np.ones((15, 15), np.uint8)) & (1 - cv2.erode(ctx.foreground, np.ones((15, 15), np.uint8)))
    differs = np.any(hard != soft, axis=-1)
    assert differs.any() and not differs[near_edge == 0].any()


def test_shard_rows_annotations_provenance_and_donors(world, tmp_path):
    cfg, root = world
    result = engine.run_shard(cfg, root / "ingest", root / "seg" / "00000.parquet", 0, root / "seg" / "summary.json",
                              root / "seg" / "mean_background.png", tmp_path, tmp_path / "00000.json", root / "drops.parquet")
    assert result == {"images": 8, "mask_free_only": 0, "undecodable": 0, "variants": len(expand(cfg["variants"]))}
    manifest.combine([tmp_path / "00000.json"], tmp_path / "manifest.json")
    files = manifest.variant_files(tmp_path / "manifest.json", [spec.name for spec in expand(cfg["variants"])])
    assert all(paths == [tmp_path / "shards" / "00000" / f"{name}.parquet"] for name, paths in files.items())
    anns = pq.read_table(root / "ingest" / "annotations.parquet").to_pylist()
    labelled = {a["ann_id"] for a in anns if a["labelled"]}
    dropped = drops.dropped_ids(root / "drops.parquet")
    assert dropped["hard"]  # the demo catalog masks after the hard drop: it must hide something here
    rand_donors = []
    for spec in expand(cfg["variants"]):
        rows = pq.read_table(files[spec.name][0]).to_pylist()
        assert [r["image_id"] for r in rows] == list(range(1, 9))
        for r in rows:
            assert r["variant"] == spec.name and r["family"] == spec.family and r["seed"] == 3 and r["mask_source"] == "gt"
            decoded = images.decode_rgb(r["image"]["bytes"])
            assert decoded.shape == (r["height"], r["width"], 3)
            ids = {o["ann_id"] for o in r["objects"]}
            if spec.family in ("only_bg_b", "only_bg_t", "no_fg"):
                assert r["background_only"] and not r["objects"]
            elif spec.family.startswith("unl_"):  # covered: unlabelled ones and those the variant's drop scheme drops
                hidden = dropped.get(spec.params.get("drop"), set())
                assert ids == {a["ann_id"] for a in anns if a["image_id"] == r["image_id"] and a["labelled"] and a["ann_id"] not in hidden}
            else:
                assert ids == {a["ann_id"] for a in anns if a["image_id"] == r["image_id"]}
            for o in r["objects"]:
                m = masks.decode(o["segmentation"])
                assert m.shape == (r["height"], r["width"]) and o["labelled"] == (o["ann_id"] in labelled)
                x, y, w, h = o["bbox"]
                ys, xs = np.nonzero(m)
                assert x <= xs.min() and xs.max() < x + w and y <= ys.min() and ys.max() < y + h  # box follows the pixels
            if spec.family.startswith("mixed"):
                assert r["donor_id"] is not None and r["donor_class"]
                assert r["donor_id"] != r["image_id"]
            else:
                assert r["donor_id"] is None
            if spec.name == "mixed_rand":
                rand_donors.append(r["donor_id"])
    assert sorted(rand_donors) == list(range(1, 9))  # drawn without replacement: each image donates once


def test_mixed_same_and_next_respect_classes():
    cls = lambda i: 1 if i <= 4 else 2  # noqa: E731
    classes = {i: cls(i) for i in range(1, 9)}
    plan = engine.plan_donors(classes, list(range(1, 9)), seed=0)
    for i in range(1, 9):
        assert cls(plan["mixed_same"][i]) == cls(i) and plan["mixed_same"][i] != i
        assert cls(plan["mixed_next"][i]) != cls(i)
    assert sorted(plan["mixed_same"].values()) == list(range(1, 9))
    assert plan == engine.plan_donors(classes, list(range(1, 9)), seed=0)  # seeded


def test_an_images_class_is_its_largest_labelled_objects(tmp_path):
    import pyarrow as pa

    rows = [(1, 10, 3, 50.0, True), (1, 11, 4, 80.0, True), (1, 12, 5, 99.0, False),  # an unlabelled larger one does not count
            (2, 20, 6, 40.0, True), (2, 19, 7, 40.0, True),  # a tie: the lower annotation id
            (3, 30, 8, 10.0, False)]  # nothing labelled: no class
    pq.write_table(pa.table({k: [r[j] for r in rows] for j, k in enumerate(["image_id", "ann_id", "category_id", "area", "labelled"])}),
                   tmp_path / "annotations.parquet")
    assert engine.main_classes(tmp_path) == {1: 4, 2: 7}


def test_same_config_and_seed_give_byte_identical_shards(world, tmp_path):
    cfg, root = world
    digests = []
    for out in (tmp_path / "a", tmp_path / "b"):
        engine.run_shard(cfg, root / "ingest", root / "seg" / "00000.parquet", 0, root / "seg" / "summary.json",
                         root / "seg" / "mean_background.png", out, out / "00000.json", root / "drops.parquet")
        digests.append(digest(out, "*.parquet"))
    assert digests[0] == digests[1] and len(digests[0]) == len(expand(cfg["variants"]))


def test_a_small_byte_budget_writes_more_row_groups_and_the_same_rows(world, tmp_path):
    """`group_mb` bounds what a job holds: past the budget the rows so far are written out."""
    cfg, root = world
    tables = {}
    for budget in (128, 0.01):  # the whole shard in one row group; a write after every image (below the config's 1 MB floor)
        small = {**cfg, "variants": {**cfg["variants"], "group_mb": budget}}
        out = tmp_path / str(budget)
        engine.run_shard(small, root / "ingest", root / "seg" / "00000.parquet", 0, root / "seg" / "summary.json",
                         root / "seg" / "mean_background.png", out, out / "00000.json", root / "drops.parquet")
        files = {f.name: pq.ParquetFile(f) for f in (out / "shards" / "00000").glob("*.parquet")}
        tables[budget] = {name: f.read() for name, f in files.items()}
        assert {f.metadata.num_row_groups for f in files.values()} == ({1} if budget == 128 else {8})
    assert all(tables[128][name].equals(tables[0.01][name]) for name in tables[128])


def test_variant_parquet_stores_jpeg_bytes_uncompressed(world, tmp_path):
    cfg, root = world
    engine.run_shard(cfg, root / "ingest", root / "seg" / "00000.parquet", 0, root / "seg" / "summary.json",
                     root / "seg" / "mean_background.png", tmp_path, tmp_path / "00000.json", root / "drops.parquet")
    meta = pq.ParquetFile(tmp_path / "shards" / "00000" / "original.parquet").metadata
    column = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert column["image.bytes"].compression == "UNCOMPRESSED"
    assert not column["image.bytes"].has_dictionary_page
    # intermediates, read back whole: every column plain (io.parquet_options with codec=None)
    assert {c.compression for c in column.values()} == {"UNCOMPRESSED"} and not any(c.has_dictionary_page for c in column.values())


def test_pyramid_blur_matches_a_full_resolution_gaussian():
    import cv2

    pixels = (np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)
    for sigma in (1.5, 5, 15, 31):
        error = np.abs(drawing.fast_blur(pixels, sigma).astype(int) - cv2.GaussianBlur(pixels, (0, 0), sigma)).mean()
        assert error < 1.0, (sigma, error)


def test_originals_stay_whole_when_segmentation_fails(tmp_path):
    """A QC-failed image is made in the variants that read only its boxes (original, only_bg_*),
    with every object (one without a mask keeps its box, its area the box's), marked mask_qc
    false; the variants that need its mask leave it out; an image that does not decode is in none."""
    import pyarrow as pa

    root = tmp_path
    (root / "accept.csv").write_text("image_id\n1\n2\n3\n4\n5\n")
    cfg = config.validate({"seed": 3, "shard_size": 8, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 8}},
                           "segment": {"method": "gt", "qc": {"accept_list": str(root / "accept.csv")}},
                           "variants": {"scenes_dir": SCENES, "catalog": {"original": {}, "only_bg_t": {}, "bg_color": {"colours": {"red": "red"}}}}})
    ingest.run(cfg, root / "ingest")
    cut = {r["image_id"]: r["path"] for r in pq.read_table(root / "ingest" / "images.parquet").to_pylist()}[8]
    Path(cut).write_bytes(Path(cut).read_bytes()[:300])  # image 8 no longer decodes
    segment.run_shard(cfg, root / "ingest", 0, root / "seg" / "00000.parquet", root / "seg" / "stats.parquet")
    table = pq.read_table(root / "seg" / "00000.parquet")
    rows = table.to_pylist()
    rows[5]["instances"][0]["segmentation"] = None  # image 6 (failed QC) lost one object's mask
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), root / "seg" / "00000.parquet")
    segment.summarise([root / "seg" / "00000.parquet"], [root / "seg" / "stats.parquet"], root / "ingest" / "categories.parquet",
                      root / "ingest" / "annotations.parquet", root / "seg", root / "tables")
    result = engine.run_shard(cfg, root / "ingest", root / "seg" / "00000.parquet", 0, root / "seg" / "summary.json",
                              root / "seg" / "mean_background.png", root / "variants", root / "00000.json")
    assert result == {"images": 5, "mask_free_only": 2, "undecodable": 1, "variants": 3}
    made = {name: pq.read_table(root / "variants" / "shards" / "00000" / f"{name}.parquet").to_pylist()
            for name in ("original", "only_bg_t", "bg_color_red")}
    assert [r["image_id"] for r in made["original"]] == [r["image_id"] for r in made["only_bg_t"]] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["image_id"] for r in made["bg_color_red"]] == [1, 2, 3, 4, 5]
    assert [r["mask_qc"] for r in made["original"]] == [True] * 5 + [False] * 2
    anns = pq.read_table(root / "ingest" / "annotations.parquet").to_pylist()
    for row in made["original"]:
        assert sorted(o["ann_id"] for o in row["objects"]) == sorted(a["ann_id"] for a in anns if a["image_id"] == row["image_id"])
    maskless = made["original"][5]["objects"][0]
    assert maskless["segmentation"] is None and maskless["area"] == maskless["bbox"][2] * maskless["bbox"][3]
    assert all(r["background_only"] and not r["objects"] for r in made["only_bg_t"])


def test_the_manifest_lists_shards_in_order_and_refuses_mixed_variant_lists(tmp_path):
    """Export and accounting read exactly the files the manifest names, in shard order."""
    for shard, names in (("00001", ["original", "bg_gray"]), ("00000", ["original", "bg_gray"])):
        manifest.write_shard(tmp_path / "records" / f"{shard}.json", shard, names, {"images": 3, "mask_free_only": 1, "undecodable": 1, "variants": 2})
    combined = manifest.combine(sorted((tmp_path / "records").glob("*.json"), reverse=True), tmp_path / "manifest.json")
    assert combined["shards"] == ["00000", "00001"] and combined["images"] == 6 and combined["undecodable"] == 2
    files = manifest.variant_files(tmp_path / "manifest.json", ["bg_gray"])
    assert files == {"bg_gray": [tmp_path / "shards" / "00000" / "bg_gray.parquet", tmp_path / "shards" / "00001" / "bg_gray.parquet"]}
    with pytest.raises(KeyError, match="no variant \\['only_fg'\\]"):
        manifest.variant_files(tmp_path / "manifest.json", ["only_fg"])
    manifest.write_shard(tmp_path / "records" / "00002.json", "00002", ["original"], {"images": 1, "mask_free_only": 0, "undecodable": 0, "variants": 1})
    with pytest.raises(ValueError, match="shard 00002 lists variants \\['original'\\]"):
        manifest.combine(sorted((tmp_path / "records").glob("*.json")), tmp_path / "manifest2.json")


@pytest.mark.parametrize("limit", [None, 10])  # 10 bytes: past it, Arrow's own conversion takes over
def test_rows_table_builds_what_arrow_builds(monkeypatch, limit):
    import pyarrow as pa

    from bgshift import io
    from bgshift.variants.schema import ROW_SCHEMA

    if limit:
        monkeypatch.setattr(io, "BINARY_OFFSET_LIMIT", limit)
    obj = {"ann_id": 5, "bbox": [1.0, 2.0, 3.0, 4.0], "category": 0, "category_id": 7, "area": 9.0, "iscrowd": False,
           "segmentation": {"size": [4, 4], "counts": "abc"}, "labelled": True}
    rows = [{"image": {"bytes": blob, "path": f"v/{i}.jpg"}, "image_id": i, "variant": "v", "family": "f", "width": 4, "height": 4,
             "background_only": not objects, "objects": objects, "donor_id": None if i else 3, "donor_class": None,
             "background": "x", "mask_source": "gt", "mask_qc": True, "seed": 1}
            for i, (blob, objects) in enumerate([(b"\xff\xd8jpeg", [obj]), (b"", []), (bytes(range(256)) * 3, [obj, obj])])]
    for chosen in (rows, rows[:1], []):
        built = io.rows_table(chosen, ROW_SCHEMA, ("image",))
        assert built.equals(pa.Table.from_pylist(chosen, schema=ROW_SCHEMA))
        assert built.schema.equals(ROW_SCHEMA, check_metadata=True)  # the HF features metadata travels with it


def test_mixed_variants_paste_objects_on_the_donors_only_bg_t(world):
    """Xiao et al.'s Mixed-*: the objects on the donor's Only-BG-T image, its boxes filled with
    its tiled strip and the rest its real background (not the strip tiled everywhere)."""
    cfg, root = world
    job = make_job(cfg, root)
    checked = 0
    for spec, ctx, result in composites(cfg, root):
        if families.DONORS not in families.FAMILIES[spec.family].needs or spec.params["feather"]:
            continue
        donor = job.context(result.donor.image_id)
        fg, donor_boxes = ctx.foreground.astype(bool), donor.boxes_mask.astype(bool)
        assert np.array_equal(result.pixels[fg], ctx.pixels[fg])
        assert np.array_equal(result.pixels[~fg], catalog.only_bg_t(donor, {"feather": 0.0}, None).pixels[~fg])
        real_background = ~fg & ~donor_boxes
        assert real_background.any() and np.array_equal(result.pixels[real_background], donor.pixels[real_background])
        checked += 1
    assert checked == 3 * len(make_job(cfg, root).shard_images)


def test_equal_pixels_are_encoded_once_and_give_the_same_bytes(world):
    cfg, root = world
    job, quality = make_job(cfg, root), cfg["variants"]["jpeg_quality"]
    for image_id in job.shard_images:  # one job, so that its canvas carries each image's last frame to the next
        rows = dict(job.rows(image_id))
        assert rows["only_fg"]["image"]["bytes"] == rows["bg_color_black"]["image"]["bytes"]  # the same composite
        ctx = job.context(image_id)
        for spec in job.specs:  # every row holds exactly the encoding of its own pixels, drawn afresh
            result = families.FAMILIES[spec.family].draw(ctx, spec.params, engine.variant_rng(3, image_id, spec.name))
            assert images.encode_jpeg_bgr(result.pixels, quality) == rows[spec.name]["image"]["bytes"], spec.name
    assert job.encodes < len(job.shard_images) * len(job.specs)

    # an image without unlabelled or dropped objects: every unl_* variant is the source itself
    whole = context.ImageContext(ctx.image_id, ctx.pixels, [replace(i, labelled=True) for i in ctx.instances], ctx.foreground,
                                 ctx.mean_colour, ctx.mean_image, scenes=ctx.scenes)
    source = drawing.identity(catalog.original(whole, {}, None).image)
    unl = [s for s in job.specs if s.family.startswith("unl_")]
    assert len(unl) >= 5 and source is not None
    for spec in unl:
        result = families.FAMILIES[spec.family].draw(whole, spec.params, engine.variant_rng(3, image_id, spec.name))
        assert result.image is whole.pixels and drawing.identity(result.image)[0] == source[0], spec.name
    writeable = whole.pixels.copy()
    assert drawing.identity(writeable) is None  # a private array has no key: it is always encoded


def test_a_crop_reaching_every_border_is_the_source_itself(world):
    """Then `original`'s bytes and objects serve it: the same rows a whole-frame crop would give."""
    cfg, root = world
    job = make_job(cfg, root)
    ctx = job.context(job.shard_images[0])
    h, w = ctx.shape
    whole = catalog.bg_crop(ctx, {"margin": max(h, w)}, None)
    assert whole.image is ctx.pixels and drawing.identity(whole.image) == drawing.identity(catalog.original(ctx, {}, None).image)
    cropped_whole = catalog.Result(ctx.pixels, objects="crop", crop=(0, 0, w, h))
    assert objects.transform_objects(whole, ctx, job.category_index) == objects.transform_objects(cropped_whole, ctx, job.category_index)
    assert catalog.bg_crop(ctx, {"margin": 0}, None).image.shape[:2] != (h, w)  # here objects leave a border: a real crop


def test_a_canvas_draws_each_composite_as_a_fresh_array_would():
    """Composites over the bottom the canvas already holds restore only the previous region:
    a sequence mixing bottoms, masks, soft edges and sizes must still give each composite's pixels."""
    rng = np.random.default_rng(0)
    shape = (48, 64)
    source, other = (rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(2))
    source.flags.writeable = False  # as a decoded source is (a writeable bottom is copied whole every time)
    ctx = context.ImageContext(1, source, [], np.zeros(shape, np.uint8), np.zeros(3), source)
    masks_ = []
    for y, x in ((5, 7), (20, 30), (30, 2)):
        m = np.zeros(shape, np.uint8)
        m[y : y + 12, x : x + 20] = 1
        masks_.append(m)
    black, small = drawing.solid(shape, (0, 0, 0)), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    small_ctx = context.ImageContext(2, small, [], np.zeros((16, 16), np.uint8), np.zeros(3), small)
    small_mask = np.zeros((16, 16), np.uint8)
    small_mask[4:9, 4:12] = 1
    steps = [(ctx, black, source, masks_[0], 0), (ctx, black, source, masks_[1], 2.0), (ctx, other, source, masks_[2], 0),
             (ctx, source, other, masks_[0], 0), (ctx, black, source, masks_[1], 0), (small_ctx, black, small, small_mask, 1.0),
             (ctx, black, source, masks_[2], 1.5), (ctx, other, source, masks_[0], 0)]
    canvas = drawing.Canvas()
    for n, (image, top, bottom, mask, feather) in enumerate(steps):
        composite = image.composite(top, bottom, mask, feather)
        drawn = canvas.draw(composite)
        assert np.array_equal(drawn, composite.draw()), n
        if not feather:
            assert np.array_equal(drawn, np.where(mask[..., None].astype(bool), top, bottom)), n
    assert not np.shares_memory(composite.draw(), canvas.frame)  # a drawn result is its own array


def test_the_planned_cache_loads_a_value_again_only_when_it_had_to_drop_it():
    requests, loads = [1, 2, 1, 3, 2, 1], []
    cache = engine.PlannedCache(requests, capacity=1, load=lambda key: loads.append(key) or key * 10)
    assert [cache(key) for key in requests] == [10, 20, 10, 30, 20, 10]
    # one place: 2 (asked for again later than 1) is dropped, 3 (never asked for again) not kept
    assert loads == [1, 2, 3, 2] and cache.loads == 4 and cache.kept == {}


def test_a_one_shard_job_decodes_each_image_once(world, tmp_path):
    """Every donor is one of the shard's images: each is decoded once, as a source and as a donor."""
    cfg, root = world
    job = make_job(cfg, root)
    job.run(tmp_path / "out")
    assert job.decoded.loads == len(job.todo) == 8
    # every distinct picture is encoded, and no more: only_fg is bg_color_black in every image
    written = [pq.read_table(tmp_path / "out" / f"{spec.name}.parquet", columns=["image_id", "image"]).to_pylist() for spec in job.specs]
    distinct = {(row["image_id"], row["image"]["bytes"]) for rows in written for row in rows}
    assert len(distinct) <= job.encodes <= len(job.todo) * (len(job.specs) - 1)


def test_the_variant_bench_runs_and_counts_a_jobs_decodes_and_encodes(capsys):
    """`make bench BENCH=variants` on a tiny two-shard world (donors from the other shard)."""
    import run as bench

    bench.bench_variants([(160, 120)], n=4, world_shards=2)
    out = capsys.readouterr().out
    decodes = float(out.split("images decoded (sources, donors):")[1].split()[0])
    encodes = float(out.split("JPEG encodes (equal pixels once):")[1].split()[0])
    assert "ratio stage/floor:" in out and 1.0 <= decodes <= 4.0 and encodes < len(expand(demo_variants()))


def test_mixed_donors_come_from_the_images_own_split():
    """A training image never sits on a test image's background, nor the other way round."""
    classes = {i: 1 + i % 3 for i in range(1, 61)}
    split_of = {i: ("train", "val", "test")[i % 7 % 3] for i in range(1, 61)}
    plan = engine.plan_donors(classes, list(range(1, 61)), seed=0, split_of=split_of)
    for family, donors in plan.items():
        assert sorted(donors) == list(range(1, 61)), family
        assert all(split_of[donor] == split_of[image] for image, donor in donors.items()), family
    unsplit = engine.plan_donors(classes, list(range(1, 61)), seed=0)
    assert any(split_of[d] != split_of[i] for i, d in unsplit["mixed_rand"].items())  # what the splits prevent


def test_a_multi_split_run_has_no_cross_split_donor(tmp_path):
    """The in-process pipeline (ratio split into train, val and test) on the demo world: every
    mixed_* row of every set takes its background from an image of its own split."""
    from conftest import run_stages
    from bgshift import splits

    cfg = config.validate({
        "seed": 3, "dataset": {"kind": "synthetic", "synthetic": {"num_images": 30, "objects_per_image": [1, 3]}},
        "segment": {"method": "gt"}, "splits": {"ratios": {"train": 0.5, "val": 0.25, "test": 0.25}},
        "variants": {"catalog": {"original": {}, "mixed_same": {}, "mixed_rand": {}, "mixed_next": {}}},
        "sets": {"train": {"mixed": {"variants": ["mixed_same", "mixed_rand", "mixed_next"]}}, "test": ["mixed_rand"]}})
    run_stages(cfg, tmp_path)
    split_of = splits.load(tmp_path / "splits" / "splits.parquet")
    rows = [row for path in (tmp_path / "variants" / "shards").rglob("mixed_*.parquet")
            for row in pq.read_table(path, columns=["image_id", "donor_id"]).to_pylist()]
    assert len(rows) > 60 and {split_of[r["image_id"]] for r in rows} == {"train", "val", "test"}
    assert all(split_of[r["donor_id"]] == split_of[r["image_id"]] for r in rows)


def test_a_test_set_is_background_only_by_its_families_records_not_its_name():
    """evaluate scores a set by false positives alone when every variant's family leaves no object."""
    assert families.background_only(["only_bg_t", "no_fg"]) and families.background_only(["only_bg_b"])
    assert not families.background_only(["only_bg_t", "original"]) and not families.background_only([])
    assert {r.name for r in families.RECORDS if r.background_only} == {"only_bg_b", "only_bg_t", "no_fg"}


def test_bg_pool_paints_each_image_on_a_seeded_picture_from_its_folder(world):
    """Each image's background is one of the pool's pictures, named in the row; the draw is the
    variant's seeded stream, so the same image gets the same picture again, and the 8 images
    do not all get one picture."""
    cfg, root = world
    job = make_job(cfg, root)
    spec = next(s for s in job.specs if s.family == "bg_pool")
    assert set(spec.params["pool"]) == {"snowfield", "forest_floor", "asphalt", "lake", "dunes", "brick_wall"}
    chosen = {}
    for image_id in job.shard_images:
        ctx = job.context(image_id)
        result = families.FAMILIES["bg_pool"].draw(ctx, spec.params, engine.variant_rng(3, image_id, spec.name))
        again = families.FAMILIES["bg_pool"].draw(ctx, spec.params, engine.variant_rng(3, image_id, spec.name))
        assert result.background in spec.params["pool"] and again.background == result.background
        background = ~ctx.foreground.astype(bool)
        picture = ctx.fitted(ctx.scenes[result.background])
        assert np.array_equal(result.pixels[background], picture[background])
        chosen[image_id] = result.background
    assert len(set(chosen.values())) > 1
    with pytest.raises(ValueError, match="no background picture"):
        expand({"feather": 0, "scenes_dir": SCENES, "catalog": {"bg_pool": {"folder": str(root)}}})


def test_unl_patch_with_textures_covers_the_hidden_objects_with_a_pool_picture(world):
    """The hidden objects' pixels come from one texture of the folder (named in the row), the
    labelled objects and the rest of the image stay the source's."""
    cfg, root = world
    job = make_job(cfg, root)
    spec = expand({"feather": 0, "scenes_dir": SCENES, "catalog": {"unl_patch": {"textures": str(POOL)}}})[0]
    job.scenes.update({name: images.read_bgr(path) for name, path in spec.params["pool"].items()})
    covered = 0
    for image_id in job.shard_images:
        ctx = job.context(image_id)
        result = families.FAMILIES["unl_patch"].draw(ctx, spec.params, engine.variant_rng(3, image_id, spec.name))
        hidden = ctx.hidden_mask(ctx.hidden(None)).astype(bool)
        assert result.background in spec.params["pool"] and np.array_equal(result.pixels[~hidden], ctx.pixels[~hidden])
        texture = ctx.fitted(ctx.scenes[result.background])
        assert np.array_equal(result.pixels[hidden], texture[hidden])
        covered += int(hidden.any())
    assert covered  # the world hides some objects (unlabelled_share 0.7)
