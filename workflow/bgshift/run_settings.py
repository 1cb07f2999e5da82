"""Which settings make a run's results and which only say how its jobs run. Run-only settings are
Snakemake resources (threads, devices, memory bounds, decode batches, review-picture sizes):
kept out of the jobs' params, of the digest that decides whether a training run resumes, and of
the config the results page shows, so that editing one reruns nothing."""
from __future__ import annotations

import copy

# A model's settings that change how a run decodes its data, not what it learns: resources of the
# training job, kept out of its params and of the digest that decides whether a run resumes.
RUN_ONLY_MODEL_KEYS = ("workers",)
PLANNING_MODEL_KEYS = ("sets",)  # which runs exist, not what a run learns
# Settings that change how or where jobs run, or the size of review pictures, never the results:
# Snakemake resources of their jobs. The results page shows the config without them, so that
# editing one reruns nothing (the picture sizes reach the page through the pictures themselves).
RUN_ONLY_SETTINGS = (("train", "threads"), ("train", "device"), ("train", "mem_mb"), ("train", "runtime"),
                     ("segment", "deeplabv3", "batch_size"), ("segment", "deeplabv3", "device"), ("segment", "contact_sheet"),
                     ("variants", "group_mb"), ("variants", "donor_cache"), ("variants", "contact_sheet"))


def result_settings(config: dict) -> dict:
    """The config without its run-only settings (RUN_ONLY_SETTINGS, each model's workers): what
    made a run's results, as the results page shows it."""
    kept = copy.deepcopy(config)
    for *parents, leaf in RUN_ONLY_SETTINGS:
        section = kept
        for key in parents:
            section = section.get(key, {})
        section.pop(leaf, None)
    for model in kept.get("train", {}).get("models", {}).values():
        for key in RUN_ONLY_MODEL_KEYS:
            model.pop(key, None)
    return kept


def learnt_settings(model: dict) -> dict:
    """A model's settings without the run-only and planning ones (what its checkpoints depend on)."""
    return {key: value for key, value in model.items() if key not in RUN_ONLY_MODEL_KEYS + PLANNING_MODEL_KEYS}
