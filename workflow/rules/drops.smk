rule drops:
    """Annotation-drop schemes, kept/dropped per annotation, and the share each drops."""
    input:
        annotations=rules.ingest.output.annotations,
    output:
        drops=f"{RESULTS}/drops/drops.parquet",
        table=f"{RESULTS}/tables/drop_statistics.csv",
        table_md=f"{RESULTS}/tables/drop_statistics.md",
    params:
        config=job_config("seed", "drops"),
        tables=lambda wildcards, output: Path(output.table).parent,
    benchmark:
        f"{RESULTS}/benchmarks/drops/drops.tsv"
    log:
        f"{RESULTS}/logs/drops.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift drops --config-json {params.config:q} --annotations {input.annotations:q} --out {output.drops:q}"
        " --tables {params.tables:q} > {log:q} 2>&1"
