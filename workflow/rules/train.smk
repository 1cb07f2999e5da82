rule train:
    """One (model, training set, seed) run; resumes from its last checkpoint when restarted."""
    input:
        set_dir=f"{RESULTS}/sets/{{set}}",
        categories=rules.ingest.output.categories,
    output:
        done=f"{RESULTS}/train/{{model}}/{{set}}/seed{{seed}}/done.json",
    params:
        config=stage_config("train"),
        run_dir=lambda wildcards, output: Path(output.done).parent,
    wildcard_constraints:
        model="|".join(MODELS),
        set="|".join(TRAIN_SETS),
        seed=r"\d+",
    threads: config["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["train"]["mem_mb"],
        runtime=config["train"]["runtime"],
    log:
        f"{RESULTS}/logs/train/{{model}}/{{set}}/seed{{seed}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "BGSHIFT_THREADS={threads} bgshift train --config-json {params.config:q} --model {wildcards.model}"
        " --set-dir {input.set_dir} --seed {wildcards.seed} --categories {input.categories}"
        " --run-dir {params.run_dir} --done {output.done} >> {log} 2>&1"
