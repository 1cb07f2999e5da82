rule ingest:
    """Read the dataset into canonical tables; unusable records go to rejects.parquet."""
    input:
        dataset=DATASET_FILES,
    output:
        **INGEST_TABLES,
        summary=f"{RESULTS}/ingest/summary.json",
    params:
        config=job_config("seed", "dataset", "ingest"),
        images=IMAGE_LISTING,  # not read by the job: a changed image listing reruns it
        out=lambda wildcards, output: Path(output.images).parent,
    benchmark:
        f"{RESULTS}/benchmarks/ingest/ingest.tsv"
    log:
        f"{RESULTS}/logs/ingest.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift ingest --config-json {params.config:q} --out {params.out:q} > {log:q} 2>&1"
