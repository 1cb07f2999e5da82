rule train:
    """One (model, training set, seed) run; resumes from its last checkpoint when restarted."""
    input:
        set_dir=training_set,
        categories=rules.ingest.output.categories,
        weights=starting_weights,
    output:
        done=f"{RESULTS}/train/{{model}}/{{set}}/seed{{seed}}/done.json",
    params:
        config=lambda wildcards: job_config(train={"models": {wildcards.model: model_settings(wildcards.model)}}),
        run_dir=lambda wildcards, output: Path(output.done).parent,
    wildcard_constraints:  # narrower than the global ones: a run's done.json is trained or adopted
        model=one_of(TRAINED_MODELS),
        set=one_of(TRAIN_SETS),
    threads: config["train"]["threads"]
    resources:
        gpu=1,
        device=config["train"]["device"],  # where to run (auto: a free GPU by lock, else CPU), not what is learnt
        mem_mb=config["train"]["mem_mb"],
        runtime=config["train"]["runtime"],
        workers=lambda wildcards: config["train"]["models"][wildcards.model].get("workers", 0),  # decoding processes
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}/{{set}}/seed{{seed}}.tsv"
    log:
        f"{RESULTS}/logs/train/{{model}}/{{set}}/seed{{seed}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "BGSHIFT_THREADS={threads} bgshift train --config-json {params.config:q} --model {wildcards.model:q}"
        " --set-dir {input.set_dir:q} --seed {wildcards.seed:q} --categories {input.categories:q}"
        " --run-dir {params.run_dir:q} --done {output.done:q} --device {resources.device:q} --workers {resources.workers:q} >> {log:q} 2>&1"


rule adopt:
    """An evaluate-only model as a run, instead of training: its weights found and its classes
    mapped onto the dataset's (a dataset class no model class maps to stops here, before detection)."""
    input:
        categories=rules.ingest.output.categories,
        weights=starting_weights,
    output:
        done=f"{RESULTS}/train/{{model}}/{PRETRAINED}/seed{PRETRAINED_SEED}/done.json",
    params:
        config=lambda wildcards: job_config(train={"models": {wildcards.model: model_settings(wildcards.model)}}),
    wildcard_constraints:
        model=one_of(EVALUATE_ONLY),
    benchmark:
        f"{RESULTS}/benchmarks/adopt/{{model}}.tsv"
    log:
        f"{RESULTS}/logs/adopt/{{model}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift adopt --config-json {params.config:q} --model {wildcards.model:q} --categories {input.categories:q}"
        " --done {output.done:q} > {log:q} 2>&1"
