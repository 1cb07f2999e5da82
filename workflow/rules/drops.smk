rule drops:
    """Annotation-drop schemes, kept/dropped per annotation, and the share each drops."""
    input:
        annotations=rules.ingest.output.annotations,
        categories=rules.ingest.output.categories,  # the classes a `categories` scheme names
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


rule drop_sheet:
    """What each drop scheme erases, drawn (kept boxes green, erased red; the BRL paper's Fig 1)."""
    input:
        **INGEST_TABLES,
        drops=rules.drops.output.drops,
    output:
        report(f"{RESULTS}/plots/drop_overlays.png", caption="../report/drop_overlays.rst", category="Data"),
    params:
        images=config["evaluate"]["example_images"],
        ingest=lambda wildcards, input: Path(input.images).parent,
    benchmark:
        f"{RESULTS}/benchmarks/drop_sheet/drop_sheet.tsv"
    log:
        f"{RESULTS}/logs/drop_sheet.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift drop-sheet --ingest {params.ingest:q} --drops {input.drops:q} --out {output:q} --images {params.images:q} > {log:q} 2>&1"
