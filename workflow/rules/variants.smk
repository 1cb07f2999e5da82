rule variants:
    """Every configured variant of one shard: decode once, composite, encode (JPEG bytes + provenance)."""
    input:
        images=rules.ingest.output.images,
        annotations=rules.ingest.output.annotations,
        segment=rules.segment.output.masks,
        background=rules.segment_summary.output.summary,  # also the donor pool: every QC-passed image
        mean_background=rules.segment_summary.output.mean_background,
        scenes=SCENE_FILES,
        drops=rules.drops.output.drops,
        splits=rules.splits.output.splits,  # mixed_* donors from each image's own split
    output:
        variants=directory(VARIANT_SHARD),  # {variant}.parquet for every variant
        record=VARIANT_RECORD,
    params:
        config=job_config("seed", "shard_size", variants=section("variants", "contact_sheet", "group_mb", "donor_cache")),
        ingest=lambda wildcards, input: Path(input.images).parent,
        out=lambda wildcards, output: Path(output.record).parent.parent,  # the variants folder
    resources:
        # memory bounds, not parameters: they change how much a job holds, not what it writes
        group_mb=config["variants"]["group_mb"],
        donor_cache=config["variants"]["donor_cache"],
    benchmark:
        f"{RESULTS}/benchmarks/variants/{{shard}}.tsv"
    log:
        f"{RESULTS}/logs/variants/{{shard}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift variants --config-json {params.config:q} --ingest {params.ingest:q} --segment {input.segment:q}"
        " --shard {wildcards.shard:q} --background {input.background:q} --mean-background {input.mean_background:q}"
        " --drops {input.drops:q} --splits {input.splits:q} --out {params.out:q} --record {output.record:q}"
        " --group-mb {resources.group_mb:q} --donor-cache {resources.donor_cache:q} > {log:q} 2>&1"


rule variant_manifest:
    """Every shard's variant files in one manifest: what export and accounting read, so that no
    job lists the variant x shard files one by one (planning stays linear in the shards)."""
    input:
        expand(VARIANT_RECORD, shard=SHARDS),
    output:
        manifest=VARIANT_MANIFEST,
    benchmark:
        f"{RESULTS}/benchmarks/variant_manifest/variant_manifest.tsv"
    log:
        f"{RESULTS}/logs/variant_manifest.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift variant-manifest --records {input:q} --out {output.manifest:q} > {log:q} 2>&1"


rule variant_sheet:
    """Contact sheet: the first images of the first shard across every variant."""
    input:
        expand(rules.variants.output.variants, shard=SHARDS[0]),
    output:
        report(
            f"{RESULTS}/variants/contact_sheet.png",
            caption="../report/variant_sheet.rst",
            category="Variants",
        ),
    params:
        config=job_config(variants={"contact_sheet": config["variants"]["contact_sheet"]}),
        names=VARIANTS,
    benchmark:
        f"{RESULTS}/benchmarks/variant_sheet/variant_sheet.tsv"
    log:
        f"{RESULTS}/logs/variant_sheet.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift variant-sheet --config-json {params.config:q} --names {params.names:q} --shard-dir {input:q} --out {output:q} > {log:q} 2>&1"
