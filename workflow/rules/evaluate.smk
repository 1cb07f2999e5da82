rule detect:
    """A trained run's checkpoints on the test sets (best everywhere, all on the swept ones); raw predictions kept."""
    input:
        done=rules.train.output.done,
        test_sets=test_sets_of,
        categories=rules.ingest.output.categories,
    output:
        manifest=f"{RESULTS}/eval/{{model}}/{{set}}/seed{{seed}}/manifest.json",
    params:
        config=lambda wildcards: job_config(
            train={"models": {wildcards.model: model_settings(wildcards.model)}},
            evaluate={"sweep_test_sets": config["evaluate"]["sweep_test_sets"]},
        ),
        out=lambda wildcards, output: Path(output.manifest).parent,
    threads: config["train"]["threads"]
    resources:
        gpu=1,
        device=config["train"]["device"],  # where to run (auto: a free GPU by lock, else CPU), not what is learnt
        mem_mb=config["train"]["mem_mb"],
    benchmark:
        f"{RESULTS}/benchmarks/detect/{{model}}/{{set}}/seed{{seed}}.tsv"
    log:
        f"{RESULTS}/logs/detect/{{model}}/{{set}}/seed{{seed}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "BGSHIFT_THREADS={threads} bgshift detect --config-json {params.config:q} --model {wildcards.model:q} --done {input.done:q}"
        " --test-sets {input.test_sets:q} --categories {input.categories:q} --out {params.out:q} --device {resources.device:q}"
        " > {log:q} 2>&1"


rule score:
    """COCO AP/AP50/AP75/..., per-class AP, count MAE, false positives per image, from stored detections."""
    input:
        manifest=rules.detect.output.manifest,
    output:
        metrics=f"{RESULTS}/eval/{{model}}/{{set}}/seed{{seed}}/metrics.parquet",
        per_image=f"{RESULTS}/eval/{{model}}/{{set}}/seed{{seed}}/per_image.parquet",
    params:
        config=job_config(evaluate={"score_threshold": config["evaluate"]["score_threshold"]}),
        background_only=BACKGROUND_ONLY_TEST_SETS,  # from their variants' families, not their names
    benchmark:
        f"{RESULTS}/benchmarks/score/{{model}}/{{set}}/seed{{seed}}.tsv"
    log:
        f"{RESULTS}/logs/score/{{model}}/{{set}}/seed{{seed}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift score --config-json {params.config:q} --manifest {input.manifest:q} --out {output.metrics:q} --per-image {output.per_image:q}"
        " --background-only {params.background_only:q} > {log:q} 2>&1"
