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


rule saliency:
    """Saliency maps of a run's best checkpoint on a fixed sample of its test sets, and their share on the objects."""
    input:
        done=rules.train.output.done,
        test_sets=saliency_sets_of,
        categories=rules.ingest.output.categories,
    output:
        maps=f"{RESULTS}/eval/{{model}}/{{set}}/seed{{seed}}/saliency.parquet",
        sheet=report(f"{RESULTS}/plots/saliency/{{model}}/{{set}}/seed{{seed}}.png", caption="../report/saliency.rst", category="Saliency"),
    params:
        config=lambda wildcards: job_config(
            "seed",  # which pictures: the same in every run
            train={"models": {wildcards.model: model_settings(wildcards.model)}},
            evaluate={"saliency": {"images": config["evaluate"]["saliency"]["images"]}},
        ),
    threads: config["train"]["threads"]
    resources:
        gpu=1,
        device=config["train"]["device"],  # where to run, not what is drawn
        mem_mb=config["train"]["mem_mb"],
    benchmark:
        f"{RESULTS}/benchmarks/saliency/{{model}}/{{set}}/seed{{seed}}.tsv"
    log:
        f"{RESULTS}/logs/saliency/{{model}}/{{set}}/seed{{seed}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "BGSHIFT_THREADS={threads} bgshift saliency --config-json {params.config:q} --model {wildcards.model:q} --done {input.done:q}"
        " --test-sets {input.test_sets:q} --categories {input.categories:q} --out {output.maps:q} --sheet {output.sheet:q}"
        " --device {resources.device:q} > {log:q} 2>&1"


rule score:
    """COCO AP/AP50/AP75/..., per-class AP, count MAE, false positives per image, from stored detections
    (and the saliency maps' foreground attention, when maps are drawn)."""
    input:
        manifest=rules.detect.output.manifest,
        saliency=rules.saliency.output.maps if SALIENCY else [],
        run=rules.train.output.done,  # its losses
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
        " --background-only {params.background_only:q} --saliency {input.saliency:q} --run {input.run:q} > {log:q} 2>&1"
