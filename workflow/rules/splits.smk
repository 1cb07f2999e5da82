rule splits:
    """Every source image -> train, val or test (seeded; or whole groups held out)."""
    input:
        images=rules.ingest.output.images,
    output:
        splits=f"{RESULTS}/splits/splits.parquet",
    params:
        config=job_config("seed", "splits"),
    benchmark:
        f"{RESULTS}/benchmarks/splits/splits.tsv"
    log:
        f"{RESULTS}/logs/splits.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift splits --config-json {params.config:q} --images {input.images:q} --out {output.splits:q} > {log:q} 2>&1"
