"""findings.md, findings.json, a forest plot of every claim and one plot per claim."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import write_json, write_text  # noqa: E402
from ..report.plots import save_png  # noqa: E402

VERDICT_SHADES = {"holds": "#2e7d32", "equivalent": "#1565c0", "reversed": "#c62828", "inconclusive": "#757575"}


def _fmt(value: float) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:+.3f}"


def _interval(pair: list[float]) -> str:
    return f"[{_fmt(pair[0])}, {_fmt(pair[1])}]"


def _needed(row: dict) -> str:
    if row["verdict"] != "inconclusive":
        return ""
    if len(row["seeds"]) < 2:
        return "≥ 2 seeds"
    return "more test images" if row["more_images_needed"] else str(row["seeds_needed"])


def summary_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "claim": f"{r['study']}: {r['title']}" if r["study"] else r["title"], "metric": r["metric"] + ("" if r["checkpoint"] == "best" else " (window)"),
        "claimed": r["expect"], "effect": _fmt(r["effect"]), "95% interval": _interval(r["interval"]),
        "adjusted interval": _interval(r["adjusted_interval"]), "adjusted p": f"{r['adjusted_p']:.3g}",
        "P(improvement)": f"{r['p_improvement']:.2f}", "seeds": len(r["seeds"]), "verdict": f"**{r['verdict']}**",
        "seeds needed": _needed(r)} for r in rows])


def _method(settings: dict, command: str) -> str:
    return (f"Made by `{command}`. Each claim's effect is a contrast of metrics-table cells, paired by seed; the interval "
            f"accounts for both the seeds and the test images (the variance of the seed mean is var(seeds)/n plus the variance "
            f"over {settings['replicates']} bootstrap resamples of the test images, the same resample for every seed and arm; "
            f"Student's t with Welch-Satterthwaite degrees of freedom). Verdicts are at a family-wise level of {settings['alpha']} "
            f"across the claims below (Holm-Bonferroni): holds / reversed (the adjusted test of no effect rejects, in / against "
            f"the claimed direction), equivalent (TOST within the margin rejects), inconclusive (neither). The adjusted interval "
            f"is at the claim's Holm step level (TOST's matching interval for an equivalence claim). P(improvement): the share "
            f"of seed pairs whose plus side beats the minus side. Seeds needed: the seeds at which an inconclusive claim would "
            f"reach a verdict with probability {settings['power']}, if the observed effect and spreads are the truth "
            f"('more test images': the test images' variance alone prevents it).")


def _sections(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        share = f"{100 * r['image_share']:.0f}%"
        lines += ["", f"### {r['claim']}: {r['title']}", "",
                  f"{r['metric']} at the {r['checkpoint']} checkpoint; claimed {r['expect']}; verdict **{r['verdict']}**."
                  + (f" Reference: {r['reference']}." if r["reference"] else ""), "",
                  (f"On {r['test_images']} test images (those every compared cell scored). " if r["test_images"]
                   else "A run's own figure: no test image varies it, only the seeds. ")
                  + f"Per-seed effects (seeds {r['seeds']}): " + ", ".join(_fmt(v) for v in r["per_seed"])
                  + f". Standard error {r['se']:.4f} ({share} of its variance from the test images), p {r['p']:.3g}, "
                  f"adjusted p {r['adjusted_p']:.3g}.", "", f"![{r['claim']}](findings/{r['claim']}.png)"]
    return lines


def _forest(rows: list[dict], path: Path) -> None:
    """Every claim's effect: adjusted interval thick, unadjusted thin, shaded by verdict."""
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(rows) + 1.2))
    for y, r in enumerate(reversed(rows)):
        shade = VERDICT_SHADES[r["verdict"]]
        ax.plot(r["adjusted_interval"], [y, y], color=shade, lw=5, alpha=0.45, solid_capstyle="butt")
        ax.plot(r["interval"], [y, y], color=shade, lw=1.5)
        ax.plot([r["effect"]], [y], "o", color=shade)
        if r["margin"] is not None:
            ax.plot([-r["margin"], r["margin"]], [y - 0.3, y - 0.3], color=VERDICT_SHADES["equivalent"], lw=1, ls=":")
    ax.axvline(0, color="black", lw=0.7)
    ax.set_yticks(range(len(rows)), [textwrap.shorten(f"{r['title']} ({r['verdict']})", 90) for r in reversed(rows)], fontsize=8)
    ax.set_xlabel("effect (plus − minus), in each claim's metric; dotted: an equivalence claim's margin")
    ax.set_title("Findings: effect, 95% interval (thin) and Holm-adjusted interval (thick)", fontsize=9)
    save_png(fig, path)


def _claim_plot(r: dict, path: Path) -> None:
    """Per-seed effects, their mean and both intervals; the margin band of an equivalence claim."""
    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    shade = VERDICT_SHADES[r["verdict"]]
    ax.scatter(np.zeros(len(r["per_seed"])) - 0.15, r["per_seed"], color="#1f3b57", s=16, label="per seed")
    ax.errorbar([0.1], [r["effect"]], yerr=[[r["effect"] - r["adjusted_interval"][0]], [r["adjusted_interval"][1] - r["effect"]]],
                fmt="o", color=shade, lw=4, alpha=0.5, label="adjusted")
    ax.errorbar([0.25], [r["effect"]], yerr=[[r["effect"] - r["interval"][0]], [r["interval"][1] - r["effect"]]],
                fmt="o", color=shade, lw=1.2, label="95%")
    if r["margin"] is not None:
        ax.axhspan(-r["margin"], r["margin"], color=VERDICT_SHADES["equivalent"], alpha=0.08)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlim(-0.6, 0.6)
    ax.set_xticks([])
    ax.set_ylabel(f"effect ({r['metric']})")
    ax.set_title(textwrap.fill(r["title"], 60) + f"\n{r['expect']}: {r['verdict']}", fontsize=8)
    ax.legend(fontsize=6, loc="best")
    save_png(fig, path)


def write(rows: list[dict], settings: dict, out_dir: Path, command: str) -> None:
    table = summary_table(rows)
    lines = ["# Findings", "", _method(settings, command), "", table.to_markdown(index=False), "",
             "![every claim](findings/forest.png)", "", "## Each claim"] + _sections(rows)
    write_text(out_dir / "findings.md", "\n".join(lines) + "\n")
    write_json(out_dir / "findings.json", {"command": command, "settings": settings, "claims": rows})
    _forest(rows, out_dir / "findings" / "forest.png")
    for r in rows:
        _claim_plot(r, out_dir / "findings" / f"{r['claim']}.png")
