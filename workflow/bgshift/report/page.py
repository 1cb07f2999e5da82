"""results/index.html, the page a researcher opens first: did the models learn, what the claims
found, where the detectors break (heatmap tables, test_original first and the test sets grouped
by family, each cell coloured by its value and showing its difference from test_original), the
pictures, and what made the run. One self-contained file (images inline, no network), rebuilt
from stored results by `make report`.

Tables are pandas Stylers; the page around them is a Jinja template (page.html.j2).
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import jinja2
import pandas as pd
import yaml

from .. import images as imgs
from ..variants.families import FAMILIES
from . import provenance
from .tables import background_gap, load_metrics

LOWER_IS_BETTER = ("count_mae", "fp_per_image", "tide/")
BOUNDED = ("AP", "AR", "accuracy")  # metrics in [0, 1]: one colour scale for every table of them
BASELINE = "test_original"
PER_CLASS = "_per_class"  # the stem of a per-class table (tables.per_class_table)
LEAD = ("AP50", "accuracy")  # the headline metrics of detection and classification lead the tables
GROUP_ORDER = ["original", *[f for f in FAMILIES if f != "original"], "pooled", "challenge"]
VERDICT_COLOURS = {"holds": "#c7e9c0", "equivalent": "#c6dbef", "reversed": "#fcbba1", "inconclusive": "#eeeeee"}


EMBED_PNG_UP_TO = 300_000  # bytes: a larger picture (photographs, noise) is embedded as JPEG, at most
EMBED_WIDTH = 2000  # pixels wide, so the page stays a few megabytes however many test sets it shows


def image_uri(path: Path) -> str:
    """A picture as a data URI: small PNGs (plots) as they are, large ones re-encoded as JPEG."""
    data = path.read_bytes()
    if len(data) <= EMBED_PNG_UP_TO:
        return "data:image/png;base64," + base64.b64encode(data).decode()
    pixels = imgs.read_bgr(path)
    if pixels.shape[1] > EMBED_WIDTH:
        pixels = cv2.resize(pixels, (EMBED_WIDTH, round(pixels.shape[0] * EMBED_WIDTH / pixels.shape[1])), interpolation=cv2.INTER_AREA)
    return "data:image/jpeg;base64," + base64.b64encode(imgs.encode_jpeg_bgr(pixels, 85)).decode()


def column_order(testsets: list[str], families: dict[str, str]) -> list[tuple[str, str]]:
    """(group, test set) columns: test_original first, then by variant family in the catalog's order."""
    def key(name: str) -> tuple[int, str]:
        group = families.get(name, "other")
        return (-1 if name == BASELINE else GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), name)
    return [(families.get(name, "other"), name) for name in sorted(testsets, key=key)]


def cell_text(mean: float, std: float, seeds: int, delta: float | None) -> str:
    spread = f" ± {std:.3f}" if seeds > 1 else ""
    difference = f"<br><small>Δ {delta:+.3f}</small>" if delta is not None else ""
    return f"{mean:.3f}{spread} <small>(n={seeds})</small>{difference}"


def heatmap(per_seed: pd.DataFrame, metric: str, families: dict[str, str]) -> str:
    """per_seed: model, trainset, seed, testset, value. Rows model x training set, columns test
    sets; the colour is the mean over seeds, Δ the mean per-seed difference from test_original."""
    stats = per_seed.groupby(["model", "trainset", "testset"]).value.agg(["mean", "std", "count"])
    wide = per_seed.pivot_table(index=["model", "trainset", "seed"], columns="testset", values="value")
    deltas = wide.sub(wide[BASELINE], axis=0).groupby(["model", "trainset"]).mean() if BASELINE in wide else None
    columns = column_order(sorted(stats.index.get_level_values("testset").unique()), families)
    rows = sorted(stats.index.droplevel("testset").unique())
    means = pd.DataFrame(float("nan"), index=pd.MultiIndex.from_tuples(rows, names=["model", "training set"]),
                         columns=pd.MultiIndex.from_tuples(columns, names=["family", "test set"]))
    text = means.astype(object)
    for model, trainset in rows:
        for group, testset in columns:
            if (model, trainset, testset) not in stats.index:
                text.loc[(model, trainset), (group, testset)] = "–"
                continue
            mean, std, count = stats.loc[(model, trainset, testset)]
            delta = None if deltas is None or testset == BASELINE else deltas.loc[(model, trainset), testset]
            means.loc[(model, trainset), (group, testset)] = mean
            text.loc[(model, trainset), (group, testset)] = cell_text(mean, std, int(count), None if pd.isna(delta) else delta)
    styler = text.style.background_gradient(gmap=means, axis=None, **colour_scale(metric, means))
    return styler.set_table_attributes(f'class="heat" data-metric="{metric}"').to_html(escape=False)


def colour_scale(metric: str, means: pd.DataFrame) -> dict:
    """Red is worse: a metric in [0, 1] on one fixed scale, a lower-is-better one reversed, and the
    BG-gap (0 is no reliance on the background) diverging around 0."""
    if metric == "bg_gap":
        reach = max(float(means.abs().max().max()), 0.05)
        return {"cmap": "RdBu_r", "vmin": -reach, "vmax": reach}
    bounds = {"vmin": 0.0, "vmax": 1.0} if metric.startswith(BOUNDED) else {}
    return {"cmap": "RdYlGn_r" if metric.startswith(LOWER_IS_BETTER) else "RdYlGn", **bounds}


def metric_tables(metrics: pd.DataFrame, names: list[str], families: dict[str, str]) -> list[dict]:
    """One heatmap per table metric at the best checkpoint, and the BG-gap where it is defined."""
    best = metrics[metrics.checkpoint == "best"]
    sections = []
    for name in names:
        metric, per_seed = name, best[best.metric == name][["model", "trainset", "seed", "testset", "value"]]
        if name.endswith(PER_CLASS):  # a per-class table: one row per model · class and training set
            metric = name.removesuffix(PER_CLASS)
            rows = best[best.metric.str.startswith(f"{metric}/")]
            per_seed = rows.assign(model=rows.model + " · " + rows.metric.str.removeprefix(f"{metric}/"))
            per_seed = per_seed[["model", "trainset", "seed", "testset", "value"]]
        if not per_seed.empty:
            sections.append({"metric": name, "html": heatmap(per_seed, metric, families), "lower": metric.startswith(LOWER_IS_BETTER)})
    gap = background_gap(metrics)
    if not gap.empty:
        sections.append({"metric": "bg_gap", "html": heatmap(gap, "bg_gap", {**families, "bg_gap": "mixed_same − mixed_rand"}),
                         "lower": None})
    return sections


def findings_table(findings: dict) -> str:
    rows = [{"claim": c["claim"], "metric": c["metric"], "expected": c["expect"], "effect": c["effect"],
             "95% interval (Holm)": "[{:+.3f}, {:+.3f}]".format(*c["adjusted_interval"]), "adjusted p": c["adjusted_p"],
             "seeds": len(c["seeds"]), "test images": c["test_images"], "verdict": c["verdict"],
             "seeds needed": c["seeds_needed"] if c["seeds_needed"] is not None else ("more test images" if c["more_images_needed"] else "")}
            for c in findings["claims"]]
    styler = pd.DataFrame(rows).style.hide(axis="index").format({"effect": "{:+.3f}", "adjusted p": "{:.3g}"})
    styler = styler.map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, '')}", subset=["verdict"])
    return styler.set_table_attributes('class="findings"').to_html()


def pictures(results: Path, testsets: list[str]) -> list[dict]:
    """The variant contact sheet, then the detections on each test set in the tables' order, then the
    plots, the loss curves and the saliency sheets."""
    found = [("Variants of the same images", results / "variants" / "contact_sheet.png")]
    found += [(f"Detections on {name}", results / "plots" / "detections" / f"{name}.png") for name in testsets]
    found += [(path.stem.replace("_", " "), path) for path in sorted((results / "plots").glob("*.png")) if path.stem != "detections"]
    found += [(f"Loss components of {path.stem}", path) for path in sorted((results / "plots" / "curves").glob("*.png"))]
    found += [(f"Saliency of {' · '.join(path.relative_to(results / 'plots' / 'saliency').with_suffix('').parts)}", path)
              for path in sorted((results / "plots" / "saliency").rglob("*.png"))]
    return [{"title": title, "uri": image_uri(path)} for title, path in found if path.is_file()]


def build(results: str | Path, config: dict, families: dict[str, str], out: str | Path) -> dict:
    """Write the page; returns what it shows (for the CLI's log line and the tests)."""
    from ..io import write_text

    results = Path(results)
    metrics = load_metrics([results / "tables" / "metrics.parquet"])
    learning = json.loads((results / "tables" / "learning.json").read_text())
    written = [n for n in json.loads((results / "tables" / "index.json").read_text()) if n in set(metrics.metric) or n.endswith(PER_CLASS)]
    names = sorted(written, key=lambda n: n not in LEAD)  # the headline metric first, then as the tables were written
    findings_path = results / "findings.json"
    findings = json.loads(findings_path.read_text()) if findings_path.is_file() else None
    tables = metric_tables(metrics, names, families)
    testsets = [name for _, name in column_order(sorted(set(metrics.testset)), families)]
    context = {
        "learning": learning, "tables": tables, "pictures": pictures(results, testsets),
        "findings": findings and {"table": findings_table(findings), "forest": image_uri(results / "findings" / "forest.png"),
                                  "settings": findings["settings"]},
        "config": yaml.safe_dump(config, sort_keys=True), "code": provenance.code_version(), "versions": provenance.versions(),
        "times": provenance.stage_times(results / "benchmarks").style.hide(axis="index").format(precision=1).to_html(),
    }
    template = jinja2.Environment(loader=jinja2.PackageLoader("bgshift.report", "."), autoescape=jinja2.select_autoescape(["j2"]))
    write_text(out, template.get_template("page.html.j2").render(**context))
    return {"tables": [t["metric"] for t in tables], "pictures": len(context["pictures"]),
            "claims": len(findings["claims"]) if findings else 0}
