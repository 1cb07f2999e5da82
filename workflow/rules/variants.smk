rule variants:
    """Every configured variant of one shard: decode once, composite, encode (JPEG bytes + provenance)."""
    input:
        images=rules.ingest.output.images,
        annotations=rules.ingest.output.annotations,
        segment=rules.segment.output.masks,
        all_segments=expand(rules.segment.output.masks, shard=SHARDS),
        background=rules.segment_summary.output.summary,
        mean_background=rules.segment_summary.output.mean_background,
        scenes=SCENE_FILES,
        drops=rules.drops.output.drops,
    output:
        expand(f"{RESULTS}/variants/{{variant}}/{{{{shard}}}}.parquet", variant=VARIANTS),
    params:
        config=job_config("seed", "shard_size", variants=section("variants", "contact_sheet", "rows_per_group", "donor_cache")),
        ingest=lambda wildcards, input: Path(input.images).parent,
        out=lambda wildcards, output: Path(output[0]).parent.parent,
    resources:
        # memory bounds, not parameters: they change how much a job holds, not what it writes
        rows_per_group=config["variants"]["rows_per_group"],
        donor_cache=config["variants"]["donor_cache"],
    log:
        f"{RESULTS}/logs/variants/{{shard}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift variants --config-json {params.config:q} --ingest {params.ingest:q} --segment {input.segment:q}"
        " --all-segments {input.all_segments:q} --shard {wildcards.shard:q} --background {input.background:q}"
        " --mean-background {input.mean_background:q} --drops {input.drops:q} --out {params.out:q}"
        " --rows-per-group {resources.rows_per_group:q} --donor-cache {resources.donor_cache:q} > {log:q} 2>&1"


rule variant_sheet:
    """Contact sheet: the first images of the first shard across every variant."""
    input:
        expand(f"{RESULTS}/variants/{{variant}}/{SHARDS[0]}.parquet", variant=VARIANTS),
    output:
        report(
            f"{RESULTS}/variants/contact_sheet.png",
            caption="../report/variant_sheet.rst",
            category="Variants",
        ),
    params:
        config=job_config(variants={"contact_sheet": config["variants"]["contact_sheet"]}),
        names=VARIANTS,
    log:
        f"{RESULTS}/logs/variant_sheet.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift variant-sheet --config-json {params.config:q} --names {params.names:q} --files {input:q} --out {output:q} > {log:q} 2>&1"
