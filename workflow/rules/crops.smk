rule crops:
    """One set's classification samples: a crop per labelled object, as an ImageFolder tree and Parquet."""
    input:
        set_dir=f"{RESULTS}/sets/{{set}}",
        annotations=rules.ingest.output.annotations,
        categories=rules.ingest.output.categories,
    output:
        directory(f"{RESULTS}/crops/{{set}}"),
    params:
        config=job_config(classify=section("classify", "challenge"), sets={"part_rows": config["sets"]["part_rows"]}),
    benchmark:
        f"{RESULTS}/benchmarks/crops/{{set}}.tsv"
    log:
        f"{RESULTS}/logs/crops/{{set}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift crops --config-json {params.config:q} --set-dir {input.set_dir:q} --annotations {input.annotations:q}"
        " --categories {input.categories:q} --out {output:q} > {log:q} 2>&1"


rule challenge:
    """Xiao et al.'s backgrounds challenge: each test object on the Only-BG-T backgrounds of K other test images."""
    input:
        original=f"{RESULTS}/sets/test_original",
        only_bg_t=f"{RESULTS}/sets/test_only_bg_t",
        categories=rules.ingest.output.categories,
    output:
        directory(f"{RESULTS}/crops/{CHALLENGE_SET}"),
    params:
        config=job_config("seed", classify=config["classify"], sets={"part_rows": config["sets"]["part_rows"]}),
    benchmark:
        f"{RESULTS}/benchmarks/challenge/{CHALLENGE_SET}.tsv"
    log:
        f"{RESULTS}/logs/crops/{CHALLENGE_SET}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift challenge --config-json {params.config:q} --original {input.original:q} --only-bg-t {input.only_bg_t:q}"
        " --categories {input.categories:q} --out {output:q} > {log:q} 2>&1"
