import json
import math
import re

from bgshift.run_settings import learnt_settings, result_settings
from bgshift.findings.claims import check as check_claims, parse as parse_claims
from bgshift.metric_names import check as check_metric_names
from bgshift.pretrained import PRETRAINED, PRETRAINED_SEED, check as check_pretrained, evaluated_only, runs as planned_runs, training_sets_of
from bgshift.ingest import count_inputs, image_listing, input_files, summary_line as ingest_summary_line
from bgshift.sets import CHALLENGE_SET, definitions as set_definitions, spec_of, trained_sets
from bgshift.train.families import CLASSIFICATION_FAMILIES, record as family_record
from bgshift.variants import expand as expand_variants, scene_files
from bgshift.variants.families import background_only as background_only_families
from bgshift.variants.naming import pictures as variant_pictures
from bgshift.variants.manifest import shard_folder

RESULTS = config["results"]  # "results" or a folder inside it (schema-checked)
# Shards are fixed from the input's record count (cheap to read), so the DAG is
# static; a shard left empty by rejects simply writes empty outputs.
INPUT_IMAGES = count_inputs(config)
if INPUT_IMAGES == 0:
    raise ValueError(f"dataset: the {config['dataset']['kind']} input lists no image; nothing to run")
N_SHARDS = math.ceil(INPUT_IMAGES / config["shard_size"])
SHARDS = [f"{i:05d}" for i in range(N_SHARDS)]
# Contact sheets are for people to review: a sample of shards, evenly spaced, first and last included.
_SHEETS = min(config["segment"]["contact_sheet"]["shards"], N_SHARDS)
SHEET_SHARDS = sorted({SHARDS[round(i * (N_SHARDS - 1) / max(_SHEETS - 1, 1))] for i in range(_SHEETS)})
DATASET_FILES = input_files(config)  # editing one reruns ingest and everything after it
IMAGE_LISTING = image_listing(config)  # so does adding, removing or repairing an image (names and sizes)
# Per-shard files that aggregate rules list for every shard, as plain patterns: expanding
# `rules.X.output` instead makes Snakemake hash the whole list once per file (quadratic in
# the shards: at COCO scale, seconds of every dry run and every cluster job's start).
# A rule with one such list and any `rules.X` input pays it too (Snakemake hashes every input's
# source for its dependencies), so those rules name every input by pattern.
INGEST_TABLES = {table: f"{RESULTS}/ingest/{table}.parquet" for table in ("images", "annotations", "categories", "rejects")}
SEGMENT_MASKS = f"{RESULTS}/segment/shards/{{shard}}.parquet"
SEGMENT_STATS = f"{RESULTS}/segment/stats/{{shard}}.parquet"
VARIANT_RECORD = f"{RESULTS}/variants/records/{{shard}}.json"
VARIANT_SHARD = f"{RESULTS}/variants/{shard_folder('{shard}')}"  # the folder a variants job writes
# A plain string too: `ancient(rules.X.output.y)` flags the rule's own output object, which
# would make the file ancient for every other rule that names it (accounting would then
# miss a rewritten manifest).
VARIANT_MANIFEST = f"{RESULTS}/variants/manifest.json"


def job_config(*sections, **parts):
    """Exactly the configuration a job's output depends on, as JSON for `bgshift --config-json`.

    Whole sections by name, parts of sections as keywords. It is the job's params, so
    Snakemake's params trigger reruns a job when, and only when, this changes; settings that
    change no output (threads, devices, memory bounds, picture sizes of other jobs) stay out.
    """
    return json.dumps({**{key: config[key] for key in sections}, **parts}, sort_keys=True)


def section(name, *leave_out):
    """config[name] without the keys that change none of the job's outputs."""
    return section_of(config[name], *leave_out)


def section_of(settings, *leave_out):
    """A part of the config without the keys that change none of the job's outputs."""
    return {key: value for key, value in settings.items() if key not in leave_out}


def model_settings(name):
    """train.models[name] as its jobs' params: what a run learns, run-only keys (workers) aside."""
    return learnt_settings(config["train"]["models"][name])


SEGMENT_NEEDS_TRAINED_MODEL = (
    config["segment"]["method"] in ("deeplabv3", "auto") and config["segment"]["deeplabv3"]["weights"] == "train"
)
# DeepLabv3 jobs ask the scheduler for a GPU; gt and GrabCut need none.
GPU_SEGMENTATION = config["segment"]["method"] == "deeplabv3" or SEGMENT_NEEDS_TRAINED_MODEL


def segment_model_input(wildcards):
    """The fine-tuned model, only when the config asks for one."""
    if SEGMENT_NEEDS_TRAINED_MODEL:
        return rules.segment_model.output.model
    return []


VARIANT_SPECS = expand_variants(config["variants"])
VARIANTS = [spec.name for spec in VARIANT_SPECS]
VARIANT_FAMILIES = [spec.family for spec in VARIANT_SPECS]  # in VARIANTS' order
# the pictures the variant jobs paint in: variants.scenes_dir and every bg_pool's folder
SCENE_FILES = sorted({*(str(path) for path in scene_files(config["variants"]["scenes_dir"]).values()),
                      *variant_pictures(spec.params for spec in VARIANT_SPECS).values()})
# What each set's content depends on (its spec, and every variant's family and parameters),
# written by the set_definition rule; editing one variant re-exports only the sets made of it.
SET_DEFINITIONS = set_definitions(config)
SET_SPECS = {name: spec_of(definition) for name, definition in SET_DEFINITIONS.items()}
SETS = list(SET_SPECS)


def set_scene_files(wildcards):
    """The scene images a set's bg_scene variants paint in."""
    made_of = SET_DEFINITIONS[wildcards.set]["made_of"]["variants"]
    return sorted(set(variant_pictures(v["params"] for v in made_of.values()).values()))


MODELS = list(config["train"]["models"])
EVALUATE_ONLY = evaluated_only(config)  # no training job: an adopt job records their weights
TRAINED_MODELS = [m for m in MODELS if m not in EVALUATE_ONLY]
# Classifiers learn from a set's crops (rule crops), detectors from its export.
CLASSIFIERS = [m for m in MODELS if config["train"]["models"][m]["family"] in CLASSIFICATION_FAMILIES]
CHALLENGE = config["classify"]["challenge"]["backgrounds"] > 0 and bool(CLASSIFIERS)


def model_set_dir(model, set_name):
    """What a model trains or is tested on: the set's crops for a classifier, its export otherwise."""
    return f"{RESULTS}/{'crops' if model in CLASSIFIERS else 'sets'}/{set_name}"


def training_set(wildcards):
    return model_set_dir(wildcards.model, wildcards.set)


def starting_weights(wildcards):
    """The weights file a model starts from, when its settings name one (its family's record says
    which setting): an input, so placing a new file retrains."""
    settings = config["train"]["models"][wildcards.model]
    return family_record(settings["family"]).weight_files(settings)


def test_sets_of(wildcards):
    """Every test set a model is evaluated on (with the backgrounds challenge for classifiers, when on)."""
    tested = [model_set_dir(wildcards.model, name) for name in TEST_SETS]
    if wildcards.model in CLASSIFIERS and CHALLENGE:
        tested.append(f"{RESULTS}/crops/{CHALLENGE_SET}")
    return tested


SALIENCY = config["evaluate"]["saliency"]["images"] > 0  # maps drawn for every run


def saliency_sets_of(wildcards):
    """The test sets a run's saliency maps are drawn on (evaluate.saliency.test_sets; null: all it is tested on)."""
    chosen = config["evaluate"]["saliency"]["test_sets"]
    tested = test_sets_of(wildcards)
    return tested if chosen is None else [path for path in tested if Path(path).name.removeprefix("test_") in chosen]


TRAIN_SETS = trained_sets(config, SET_DEFINITIONS)
_unknown_sets = [name for name in TRAIN_SETS if name not in SET_SPECS or "train" not in SET_SPECS[name].splits]
if _unknown_sets:
    raise ValueError(f"train.sets: {_unknown_sets} are not training sets; defined: {[n for n, s in SET_SPECS.items() if 'train' in s.splits]}")
check_pretrained(config, SETS, TRAIN_SETS)
RUNS = [f"{model}/{set_name}/seed{seed}" for model, set_name, seed in planned_runs(config, TRAIN_SETS)]
RUN_SETS = TRAIN_SETS + ([PRETRAINED] if EVALUATE_ONLY else [])  # the training-set labels of the runs
TRAIN_RUNS = [f"{RESULTS}/train/{run}/done.json" for run in RUNS]
TEST_SETS = [name for name, spec in SET_SPECS.items() if "test" in spec.splits]
_unknown_maps = [name for name in config["evaluate"]["saliency"]["test_sets"] or [] if f"test_{name}" not in TEST_SETS + [CHALLENGE_SET]]
if _unknown_maps:
    raise ValueError(f"evaluate.saliency.test_sets: {_unknown_maps} are not test sets; tested: {[n.removeprefix('test_') for n in TEST_SETS]}")


def one_of(names):
    """A wildcard constraint matching exactly these names, and nothing at all when there are none
    (an empty constraint would leave the wildcard unconstrained)."""
    return "|".join(map(re.escape, names)) or "(?!)"


# Every rule's wildcards take only the names this config defines (train and adopt narrow them
# further: which of the two makes a run's done.json).
wildcard_constraints:
    model=one_of(MODELS),
    set=one_of(SETS + ([PRETRAINED] if EVALUATE_ONLY else [])),
    seed=r"\d+",


def test_set_family(name):
    """A test set's column group on the results page: its variants' family, "pooled" where they differ."""
    families = {variant["family"] for variant in SET_DEFINITIONS[name]["made_of"]["variants"].values()}
    return families.pop() if len(families) == 1 else "pooled"


TEST_SET_FAMILIES = {name: test_set_family(name) for name in TEST_SETS} | {CHALLENGE_SET: "challenge"}
# Test sets with no object left in them (every variant's family record says so): scored by false positives.
BACKGROUND_ONLY_TEST_SETS = [name for name in TEST_SETS if background_only_families(
    [variant["family"] for variant in SET_DEFINITIONS[name]["made_of"]["variants"].values()])]
EVAL_METRICS = [f"{RESULTS}/eval/{run}/metrics.parquet" for run in RUNS]
EVAL_MANIFESTS = [f"{RESULTS}/eval/{run}/manifest.json" for run in RUNS]
EVAL_PER_IMAGE = [f"{RESULTS}/eval/{run}/per_image.parquet" for run in RUNS]
SALIENCY_SHEETS = [f"{RESULTS}/plots/saliency/{run}.png" for run in RUNS] if SALIENCY else []
# The claims of the findings section, checked against what is planned before any job runs.
CLAIMS = parse_claims(config["findings"]["claims"], MODELS)
TASKS = {m: "classification" if m in CLASSIFIERS else "detection" for m in MODELS}
check_claims(config, CLAIMS, TRAIN_SETS, TEST_SETS + ([CHALLENGE_SET] if CHALLENGE else []), TASKS, training_sets_of(config, TRAIN_SETS))
if config["evaluate"]["table_metrics"] is not None:
    check_metric_names(config["evaluate"]["table_metrics"], set(TASKS.values()) or {"detection"}, "evaluate.table_metrics")
