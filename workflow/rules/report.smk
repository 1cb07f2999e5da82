rule report_tables:
    """Every table from the stored evaluations: `snakemake report_tables` never retrains or re-evaluates."""
    input:
        metrics=EVAL_METRICS,
    output:
        csv=f"{RESULTS}/tables/metrics.csv",
        parquet=f"{RESULTS}/tables/metrics.parquet",
        html=report(f"{RESULTS}/tables/tables.html", caption="../report/tables.rst", category="Results"),
        learning=f"{RESULTS}/tables/learning.json",
    params:
        config=job_config(evaluate=section("evaluate", "score_threshold", "sweep_test_sets", "example_images")),
        out=lambda wildcards, output: Path(output.csv).parent,
    benchmark:
        f"{RESULTS}/benchmarks/report_tables/report_tables.tsv"
    log:
        f"{RESULTS}/logs/report_tables.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift report-tables --config-json {params.config:q} --metrics {input.metrics:q} --out {params.out:q} > {log:q} 2>&1"


rule plots:
    """Metric plots and detections drawn on test images."""
    input:
        metrics=EVAL_METRICS,
        manifests=EVAL_MANIFESTS,
        runs=TRAIN_RUNS,  # their loss components lie beside them
    output:
        by_trainset=report(f"{RESULTS}/plots/ap_by_trainset.png", caption="../report/ap_by_trainset.rst", category="Results"),
        by_drop=report(f"{RESULTS}/plots/ap_by_drop_scheme.png", caption="../report/ap_by_drop.rst", category="Results"),
        mae=report(f"{RESULTS}/plots/mae_by_checkpoint.png", caption="../report/mae_by_checkpoint.rst", category="Results"),
        tide=report(f"{RESULTS}/plots/tide_errors.png", caption="../report/tide_errors.rst", category="Results"),
        ap_by_iou=report(f"{RESULTS}/plots/ap_by_iou.png", caption="../report/ap_by_iou.rst", category="Results"),
        examples=report(f"{RESULTS}/plots/detections.png", caption="../report/detections.rst", category="Results"),
        detections=directory(f"{RESULTS}/plots/detections"),  # one picture per test set (the results page shows them)
        curves=directory(f"{RESULTS}/plots/curves"),  # one picture of loss components per trained model
    params:
        config=job_config(evaluate={key: config["evaluate"][key] for key in ("score_threshold", "example_images", "table_metrics")}),
        drop_of=json.dumps({name: SET_SPECS[name].drop for name in TRAIN_SETS}, sort_keys=True),
        out=lambda wildcards, output: Path(output.by_trainset).parent,
    benchmark:
        f"{RESULTS}/benchmarks/plots/plots.tsv"
    log:
        f"{RESULTS}/logs/plots.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift plots --config-json {params.config:q} --metrics {input.metrics:q} --manifests {input.manifests:q}"
        " --out {params.out:q} --examples {output.examples:q} --detections {output.detections:q} --drop-of {params.drop_of:q}"
        " --runs {input.runs:q} --curves {output.curves:q}"
        " > {log:q} 2>&1"


rule findings:
    """The config's claims measured on its runs: effects over seeds and test images, Holm-adjusted verdicts."""
    input:
        per_image=EVAL_PER_IMAGE,
        metrics=EVAL_METRICS,  # a run's own metrics (its losses) beside its per-image records
    output:
        markdown=f"{RESULTS}/findings.md",
        json=f"{RESULTS}/findings.json",
        forest=report(f"{RESULTS}/findings/forest.png", caption="../report/findings.rst", category="Findings"),
        plots=expand(f"{RESULTS}/findings/{{claim}}.png", claim=[claim.name for claim in CLAIMS]),
    params:
        config=job_config(findings=config["findings"], evaluate={"window": config["evaluate"]["window"]}, seed=config["seed"]),
        models=MODELS,
        # not the --configfile of this invocation: a param that changed with the command line would rerun the job
        made_by=f"snakemake --configfile <the config> {RESULTS}/findings.md",
        out=lambda wildcards, output: Path(output.markdown).parent,
    benchmark:
        f"{RESULTS}/benchmarks/findings/findings.tsv"
    log:
        f"{RESULTS}/logs/findings.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift findings --config-json {params.config:q} --models {params.models:q} --per-image {input.per_image:q}"
        " --made-by {params.made_by:q} --out {params.out:q} > {log:q} 2>&1"


rule results_page:
    """results/index.html, the page to open first: the learning check, the findings, heatmap tables,
    pictures and provenance, in one self-contained file (it also shows the stages' times, so unlike
    the tables it is not byte-identical between two runs)."""
    input:
        tables=rules.report_tables.output,
        plots=rules.plots.output,
        findings=rules.findings.output if CLAIMS else [],
        contact_sheet=rules.variant_sheet.output,
        drop_sheet=rules.drop_sheet.output,
        saliency=SALIENCY_SHEETS,
    output:
        page=report(f"{RESULTS}/index.html", caption="../report/index.rst", category="1 Results page"),
    params:
        config=json.dumps(result_settings(config), sort_keys=True),  # shown on the page: all but the run-only settings
        families=json.dumps(TEST_SET_FAMILIES, sort_keys=True),
        results=lambda wildcards, output: Path(output.page).parent,
    benchmark:
        f"{RESULTS}/benchmarks/results_page/results_page.tsv"
    log:
        f"{RESULTS}/logs/results_page.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift results-page --config-json {params.config:q} --results {params.results:q} --families {params.families:q}"
        " --out {output.page:q} > {log:q} 2>&1"


rule results:
    """Tables, plots and findings from the stored evaluations: `make report CONFIG=...` builds this
    with only these rules allowed, so it never trains, detects or scores (a missing evaluation
    stops it, naming the file)."""
    input:
        rules.report_tables.output,
        rules.plots.output,
        rules.findings.output if CLAIMS else [],
        rules.results_page.output,
