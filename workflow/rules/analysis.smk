# Probes, clustering and figures on frozen embeddings versus honest baselines.


rule probe:
    input:
        records=processed("{ds}", "records.tsv"),
        features=lambda wc: list(feature_sets(wc.ds, wc.scope).values()),
    output:
        metrics=f"{R}/{{ds}}/{{scope}}/probe.tsv",
        predictions=f"{R}/{{ds}}/{{scope}}/predictions.tsv",
    log:
        f"{LOGS}/{{ds}}/{{scope}}/probe.log",
    benchmark:
        f"{BENCH}/{{ds}}/{{scope}}/probe.tsv"
    wildcard_constraints:
        scope=r"metrics|sweep/tau[0-9.]+",
    conda:
        "../../environment.yml"
    threads: compute("analysis", "threads")
    resources:
        mem_mb=job_mem_mb("probe", "analysis"),
        runtime=compute("analysis", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
        features=lambda wc: feature_args(wc.ds, wc.scope),
    shell:
        "OMP_NUM_THREADS={threads} sciclr probe --params {params.cfg:q} --records {input.records:q} "
        "--threads {threads} --features {params.features:q} --out {output.metrics:q} "
        "--predictions {output.predictions:q} > {log:q} 2>&1"


rule cluster:
    input:
        records=processed("{ds}", "records.tsv"),
        features=lambda wc: list(feature_sets(wc.ds, "metrics").values()),
    output:
        metrics=f"{R}/{{ds}}/metrics/cluster.tsv",
        assignments=f"{R}/{{ds}}/metrics/cluster_assignments.tsv",
    log:
        f"{LOGS}/{{ds}}/cluster.log",
    benchmark:
        f"{BENCH}/{{ds}}/cluster.tsv"
    conda:
        "../../environment.yml"
    threads: compute("analysis", "threads")
    resources:
        mem_mb=job_mem_mb("cluster", "analysis"),
        runtime=compute("analysis", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
        features=lambda wc: feature_args(wc.ds, "metrics"),
    shell:
        "OMP_NUM_THREADS={threads} sciclr cluster --params {params.cfg:q} --records {input.records:q} "
        "--threads {threads} --features {params.features:q} --out {output.metrics:q} "
        "--assignments {output.assignments:q} > {log:q} 2>&1"


rule label_efficiency:
    input:
        records=processed("{ds}", "records.tsv"),
        features=lambda wc: list(feature_sets(wc.ds, "metrics").values()),
    output:
        curve=f"{R}/{{ds}}/metrics/label_efficiency.tsv",
        comparisons=f"{R}/{{ds}}/metrics/label_efficiency_comparisons.tsv",
    log:
        f"{LOGS}/{{ds}}/label_efficiency.log",
    benchmark:
        f"{BENCH}/{{ds}}/label_efficiency.tsv"
    conda:
        "../../environment.yml"
    threads: compute("analysis", "threads")
    resources:
        mem_mb=job_mem_mb("label_efficiency", "analysis"),
        runtime=compute("analysis", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
        features=lambda wc: feature_args(wc.ds, "metrics"),
    shell:
        "OMP_NUM_THREADS={threads} sciclr label-efficiency --params {params.cfg:q} "
        "--records {input.records:q} --features {params.features:q} --threads {threads} "
        "--out {output.curve:q} --comparisons {output.comparisons:q} > {log:q} 2>&1"


rule recovery:
    input:
        records=processed("{ds}", "records.tsv"),
        features=lambda wc: list(feature_sets(wc.ds, "metrics").values()),
    output:
        f"{R}/{{ds}}/metrics/recovery.tsv",
    log:
        f"{LOGS}/{{ds}}/recovery.log",
    benchmark:
        f"{BENCH}/{{ds}}/recovery.tsv"
    conda:
        "../../environment.yml"
    threads: compute("analysis", "threads")
    resources:
        mem_mb=job_mem_mb("recovery", "analysis"),
        runtime=compute("analysis", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
        embeddings=lambda wc: [
            a for a in feature_args(wc.ds, "metrics") if a.split("=")[0] in EMBEDDINGS
        ],
        targets=lambda wc: [
            a
            for a in feature_args(wc.ds, "metrics")
            if a.split("=")[0] not in EMBEDDINGS
        ],
    shell:
        "OMP_NUM_THREADS={threads} sciclr recovery --params {params.cfg:q} "
        "--records {input.records:q} --embeddings {params.embeddings:q} "
        "--targets {params.targets:q} --threads {threads} --out {output:q} > {log:q} 2>&1"


rule figures:
    input:
        unpack(figures_inputs),
    output:
        report(
            directory(f"{R}/{{ds}}/figures"),
            patterns=["{figure}.png"],
            caption="../report/figures.rst",
            category="{ds}",
        ),
    log:
        f"{LOGS}/{{ds}}/figures.log",
    benchmark:
        f"{BENCH}/{{ds}}/figures.tsv"
    conda:
        "../../environment.yml"
    threads: compute("analysis", "threads")
    resources:
        mem_mb=job_mem_mb("figures", "analysis"),
        runtime=compute("analysis", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS, units=True),
        features=lambda wc: feature_args(wc.ds, "metrics"),
        training=lambda wc, input: " ".join(
            f"--{flag} {shlex.quote(input[key])}"
            for key, flag in (
                ("train_metrics", "training-metrics"),
                ("train_summary", "train-summary"),
                ("similarities", "similarities"),
            )
            if key in input.keys()
        ),
    shell:
        "OMP_NUM_THREADS={threads} sciclr figures --params {params.cfg:q} --records {input.records:q} "
        "--threads {threads} --features {params.features:q} --predictions {input.predictions:q} "
        "--label-efficiency {input.label_efficiency:q} {params.training} "
        "--out-dir {output:q} > {log:q} 2>&1"


rule verdict:
    input:
        records=processed("{ds}", "records.tsv"),
        predictions=f"{R}/{{ds}}/metrics/predictions.tsv",
        metrics=f"{R}/{{ds}}/metrics/probe.tsv",
        cluster=f"{R}/{{ds}}/metrics/cluster.tsv",
        assignments=f"{R}/{{ds}}/metrics/cluster_assignments.tsv",
        label_comparisons=f"{R}/{{ds}}/metrics/label_efficiency_comparisons.tsv",
    output:
        report(
            f"{R}/{{ds}}/metrics/verdict.tsv",
            caption="../report/verdict.rst",
            category="{ds}",
        ),
    log:
        f"{LOGS}/{{ds}}/verdict.log",
    benchmark:
        f"{BENCH}/{{ds}}/verdict.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("verdict", "analysis"),
        runtime=compute("analysis", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
    shell:
        "sciclr verdict --params {params.cfg:q} --records {input.records:q} "
        "--predictions {input.predictions:q} --metrics {input.metrics:q} "
        "--cluster-metrics {input.cluster:q} --assignments {input.assignments:q} "
        "--label-comparisons {input.label_comparisons:q} --out {output:q} > {log:q} 2>&1"
