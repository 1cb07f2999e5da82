rule segment_model:
    """Fine-tune DeepLabV3+ on the images that have masks (segment.deeplabv3.weights: train)."""
    input:
        images=rules.ingest.output.images,
        annotations=rules.ingest.output.annotations,
    output:
        model=f"{RESULTS}/segment/model/deeplabv3_trained.pt",
    params:
        # what it learns from: the fine-tuning settings and which groups' masks are hidden
        config=job_config("seed", segment={"ignore_masks_of_groups": config["segment"]["ignore_masks_of_groups"],
                                           "deeplabv3": {"train": config["segment"]["deeplabv3"]["train"]}}),
        ingest=lambda wildcards, input: Path(input.images).parent,
    benchmark:
        f"{RESULTS}/benchmarks/segment_model/segment_model.tsv"
    log:
        f"{RESULTS}/logs/segment_model.log",
    threads: 2
    resources:
        gpu=1 if GPU_SEGMENTATION else 0,
        device=config["segment"]["deeplabv3"]["device"],  # where it runs, not what it learns
    conda:
        "../envs/bgshift.yaml"
    shell:
        "BGSHIFT_THREADS={threads} bgshift segment-model --config-json {params.config:q} --ingest {params.ingest:q} --out {output.model:q}"
        " --device {resources.device:q} > {log:q} 2>&1"


rule segment:
    """Masks of one shard of images (gt, DeepLabv3 or GrabCut), QC, background statistics."""
    input:
        images=rules.ingest.output.images,
        annotations=rules.ingest.output.annotations,
        model=segment_model_input,
    output:
        masks=SEGMENT_MASKS,
        stats=SEGMENT_STATS,
    params:
        # the fine-tuning settings reach a shard through the model file it reads
        config=job_config("shard_size", segment={**section("segment", "contact_sheet", "deeplabv3"),
                                                 "deeplabv3": section_of(config["segment"]["deeplabv3"], "train", "batch_size", "device")}),
        ingest=lambda wildcards, input: Path(input.images).parent,
    benchmark:
        f"{RESULTS}/benchmarks/segment/{{shard}}.tsv"
    log:
        f"{RESULTS}/logs/segment/{{shard}}.log",
    threads: 2 if GPU_SEGMENTATION else 1  # DeepLab's torch runs with these threads (BGSHIFT_THREADS)
    resources:
        gpu=1 if GPU_SEGMENTATION else 0,
        # how a shard runs, not what it writes: where, and how many images are decoded together
        device=config["segment"]["deeplabv3"]["device"],
        segment_batch=config["segment"]["deeplabv3"]["batch_size"],
    conda:
        "../envs/bgshift.yaml"
    shell:
        "BGSHIFT_THREADS={threads} bgshift segment --config-json {params.config:q} --ingest {params.ingest:q} --shard {wildcards.shard:q}"
        " --out {output.masks:q} --stats {output.stats:q} --model {input.model:q} --batch {resources.segment_batch:q}"
        " --device {resources.device:q} > {log:q} 2>&1"


rule segment_sheet:
    """Contact sheet of one shard: its first images and their masks, for people to review."""
    input:
        images=rules.ingest.output.images,
        masks=rules.segment.output.masks,
    output:
        report(
            f"{RESULTS}/segment/contact_sheets/{{shard}}.png",
            caption="../report/segment_sheet.rst",
            category="Segmentation",
            subcategory="Contact sheets",
        ),
    params:
        # how many shards get a sheet decides which jobs exist, not what a sheet shows
        config=job_config(segment={"contact_sheet": {k: v for k, v in config["segment"]["contact_sheet"].items() if k != "shards"}}),
        ingest=lambda wildcards, input: Path(input.images).parent,
    benchmark:
        f"{RESULTS}/benchmarks/segment_sheet/{{shard}}.tsv"
    log:
        f"{RESULTS}/logs/segment_sheet/{{shard}}.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift segment-sheet --config-json {params.config:q} --ingest {params.ingest:q} --masks {input.masks:q}"
        " --out {output:q} > {log:q} 2>&1"


rule segment_summary:
    """QC report, dataset mean background (colour and image), mask IoU per class."""
    input:
        masks=expand(SEGMENT_MASKS, shard=SHARDS),
        stats=expand(SEGMENT_STATS, shard=SHARDS),
        categories=INGEST_TABLES["categories"],
        annotations=INGEST_TABLES["annotations"],
    output:
        summary=f"{RESULTS}/segment/summary.json",
        mean_background=f"{RESULTS}/segment/mean_background.png",
        quality=f"{RESULTS}/tables/segmentation_quality.csv",
        quality_md=f"{RESULTS}/tables/segmentation_quality.md",
    params:
        out=lambda wildcards, output: Path(output.summary).parent,
        tables=lambda wildcards, output: Path(output.quality).parent,
    benchmark:
        f"{RESULTS}/benchmarks/segment_summary/segment_summary.tsv"
    log:
        f"{RESULTS}/logs/segment_summary.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift segment-summary --shards {input.masks:q} --stats {input.stats:q} --categories {input.categories:q}"
        " --annotations {input.annotations:q} --out {params.out:q} --tables {params.tables:q} > {log:q} 2>&1"
