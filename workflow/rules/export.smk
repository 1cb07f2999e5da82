rule set_definition:
    """What a set is made of: its spec, its variants' families and parameters, seed, JPEG quality
    (sets.definitions) and the scene images it paints in. Rewritten only when one of these
    changes, which is what re-exports the set: the variant manifest is an `ancient` input.
    A shell command, not `run:`: Snakemake starts a whole new Snakemake process for every
    `run:` job (7-11 s each, measured), which is most of a small study's data stages."""
    input:
        scenes=set_scene_files,
    output:
        f"{RESULTS}/definitions/{{set}}.json",
    params:
        definition=lambda wildcards: json.dumps(SET_DEFINITIONS[wildcards.set], indent=2, sort_keys=True, ensure_ascii=False),
    benchmark:
        f"{RESULTS}/benchmarks/set_definition/{{set}}.tsv"
    log:
        f"{RESULTS}/logs/set_definition/{{set}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "printf '%s\\n' {params.definition:q} > {output:q}.tmp && mv {output:q}.tmp {output:q} && echo written {output:q} > {log:q}"


rule export:
    """One set as sharded Parquet, COCO (json + images) and YOLO (data.yaml, images, labels)."""
    input:
        definition=rules.set_definition.output,
        # ancient: one variants job writes every variant of its shard, so a rerun renews the
        # manifest; what re-exports a set is its definition (above) and the inputs below
        variants=ancient(VARIANT_MANIFEST),
        segmentation=rules.segment_summary.output.summary,
        splits=rules.splits.output.splits,
        drops=rules.drops.output.drops,
        categories=rules.ingest.output.categories,
    output:
        directory(f"{RESULTS}/sets/{{set}}"),
    params:
        config=job_config(sets=section("sets", "train", "test", "pooled")),
    benchmark:
        f"{RESULTS}/benchmarks/export/{{set}}.tsv"
    log:
        f"{RESULTS}/logs/export/{{set}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift export --config-json {params.config:q} --definition {input.definition:q} --variant-manifest {input.variants:q}"
        " --splits {input.splits:q} --drops {input.drops:q} --categories {input.categories:q} --out {output:q} > {log:q} 2>&1"
