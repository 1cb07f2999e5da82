rule export:
    """One set as sharded Parquet, COCO (json + images) and YOLO (data.yaml, images, labels)."""
    input:
        variants=set_variant_shards,
        splits=rules.splits.output.splits,
        drops=rules.drops.output.drops,
        categories=rules.ingest.output.categories,
    output:
        directory(f"{RESULTS}/sets/{{set}}"),
    params:
        config=stage_config("seed", "variants", "drops", "sets"),
        variants=lambda wildcards, input: Path(input.variants[0]).parent.parent,
    wildcard_constraints:
        set="|".join(map(re.escape, SETS)),
    log:
        f"{RESULTS}/logs/export/{{set}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift export --config-json {params.config:q} --set {wildcards.set:q} --variants {params.variants:q}"
        " --splits {input.splits:q} --drops {input.drops:q} --categories {input.categories:q} --out {output:q} > {log:q} 2>&1"
