rule accounting:
    """results/accounting.json: counts per stage, checked to add up (every input image accounted for)."""
    input:
        ingest=rules.ingest.output,
        splits=rules.splits.output.splits,
        drops=rules.drops.output.drops,
        segment=rules.segment_summary.output.summary,
        variants=rules.variant_manifest.output.manifest,
        sets=expand(rules.export.output, set=SETS),
    output:
        accounting=f"{RESULTS}/accounting.json",
    params:
        results=lambda wildcards, input: Path(input.splits).parent.parent,
        variants=VARIANTS,
        families=VARIANT_FAMILIES,  # which variants hold every image that decodes (mask-free families)
        sets=SETS,
    benchmark:
        f"{RESULTS}/benchmarks/accounting/accounting.tsv"
    log:
        f"{RESULTS}/logs/accounting.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift accounting --results {params.results:q} --variants {params.variants:q} --families {params.families:q}"
        " --sets {params.sets:q}"
        " --out {output.accounting:q} > {log:q} 2>&1"


rule summary:
    """results/summary.json: the accounting, and whether the originals-trained models learnt (when any were trained)."""
    input:
        accounting=rules.accounting.output.accounting,
        learning=rules.report_tables.output.learning if RUNS else [],
    output:
        summary=f"{RESULTS}/summary.json",
    benchmark:
        f"{RESULTS}/benchmarks/summary/summary.tsv"
    log:
        f"{RESULTS}/logs/summary.log",
    conda:
        "../envs/bgshift.yaml"
    shell:
        "bgshift summary --accounting {input.accounting:q} --learning {input.learning:q} --out {output.summary:q} > {log:q} 2>&1"
