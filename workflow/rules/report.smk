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
    output:
        by_trainset=report(f"{RESULTS}/plots/ap_by_trainset.png", caption="../report/ap_by_trainset.rst", category="Results"),
        by_drop=report(f"{RESULTS}/plots/ap_by_drop_scheme.png", caption="../report/ap_by_drop.rst", category="Results"),
        mae=report(f"{RESULTS}/plots/mae_by_checkpoint.png", caption="../report/mae_by_checkpoint.rst", category="Results"),
        tide=report(f"{RESULTS}/plots/tide_errors.png", caption="../report/tide_errors.rst", category="Results"),
        examples=report(f"{RESULTS}/plots/detections.png", caption="../report/detections.rst", category="Results"),
    params:
        config=job_config(evaluate={key: config["evaluate"][key] for key in ("score_threshold", "example_images")}),
        drop_of=json.dumps({name: SET_SPECS[name].drop for name in TRAIN_SETS}, sort_keys=True),
        out=lambda wildcards, output: Path(output.by_trainset).parent,
    log:
        f"{RESULTS}/logs/plots.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift plots --config-json {params.config:q} --metrics {input.metrics:q} --manifests {input.manifests:q}"
        " --out {params.out:q} --examples {output.examples:q} --drop-of {params.drop_of:q} > {log:q} 2>&1"
