"""bgshift: background-bias and missing-annotation experiments for object detection.

Rules are thin: each calls one `bgshift <stage>` command with exactly the configuration
its output depends on (as params, so an edit reruns only the jobs whose output it changes;
see job_config in workflow/rules/common.smk).
"""
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from bgshift import config as bgconfig  # noqa: E402
from bgshift import locks  # noqa: E402

# A killed run's lock would stop this one with a LockException: removed here, before Snakemake
# takes its own, unless another Snakemake still works in this folder (jobs' processes skip it).
if workflow.is_main_process and (unlocked := locks.unlock_before_run(Path.cwd())):
    print(unlocked, file=sys.stderr)


# The demo config applies only when no --configfile is given: Snakemake would otherwise
# deep-merge a user's config into the demo's, silently keeping its variants and sets.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



config.update(bgconfig.validate(config))

report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/drops.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/variants.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/crops.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/summary.smk"


ruleorder: challenge > crops  # test_challenge is the challenge set, never a crops job


onsuccess:
    # what ingest kept and rejected, on the console (its job's output goes to its log)
    if Path(f"{RESULTS}/ingest/summary.json").is_file():
        print(ingest_summary_line(json.loads(Path(f"{RESULTS}/ingest/summary.json").read_text()), f"{RESULTS}/ingest/rejects.parquet"))


localrules:
    set_definition,  # writes one small JSON file: not worth a cluster job
    variant_manifest,  # combines one small JSON record per shard


rule all:
    input:
        rules.ingest.output,
        rules.segment_summary.output,
        expand(rules.segment_sheet.output, shard=SHEET_SHARDS),
        rules.variant_sheet.output,
        rules.drops.output,
        expand(rules.export.output, set=SETS),
        rules.accounting.output,
        rules.summary.output,
        TRAIN_RUNS,
        # without models (train.models: {}) the run ends with the exported sets
        rules.report_tables.output if RUNS else [],
        rules.plots.output if RUNS else [],
        rules.findings.output if RUNS and CLAIMS else [],
    default_target: True
