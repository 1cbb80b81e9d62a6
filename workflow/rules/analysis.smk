# Probes, clustering and figures on frozen embeddings versus honest baselines.


def feature_sets(ds, scope):
    """Feature sets scored in ``scope``: the main comparison, or one sweep run."""
    if scope == "metrics":
        names = ["ssl", "untrained"]
        files = [f"{R}/{ds}/embeddings/{n}.npz" for n in names]
        names += baseline_names(ds)
        files += [f"{R}/{ds}/features/{n}.npz" for n in baseline_names(ds)]
    else:  # sweep/tau<T>
        run = scope.split("/", 1)[1]
        names, files = ["ssl"], [f"{R}/{ds}/embeddings/{run}.npz"]
    return dict(zip(names, files))


def feature_args(ds, scope):
    return [f"{n}={p}" for n, p in feature_sets(ds, scope).items()]


rule probe:
    input:
        records=processed("{ds}", "records.tsv"),
        features=lambda wc: list(feature_sets(wc.ds, wc.scope).values()),
    output:
        metrics=f"{R}/{{ds}}/{{scope}}/probe.tsv",
        predictions=f"{R}/{{ds}}/{{scope}}/predictions.tsv",
    wildcard_constraints:
        scope=r"metrics|sweep/tau[0-9.]+",
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
        features=lambda wc: feature_args(wc.ds, wc.scope),
    log:
        f"{LOGS}/{{ds}}/{{scope}}/probe.log",
    benchmark:
        f"{BENCH}/{{ds}}/{{scope}}/probe.tsv"
    threads: compute("analysis", "threads")
    resources:
        mem_mb=compute("analysis", "mem_mb"),
        runtime=compute("analysis", "runtime"),
    shell:
        "OMP_NUM_THREADS={threads} sciclr probe --params {params.cfg:q} --records {input.records:q} "
        "--features {params.features:q} --out {output.metrics:q} "
        "--predictions {output.predictions:q} > {log:q} 2>&1"


rule cluster:
    input:
        records=processed("{ds}", "records.tsv"),
        features=lambda wc: list(feature_sets(wc.ds, "metrics").values()),
    output:
        f"{R}/{{ds}}/metrics/cluster.tsv",
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
        features=lambda wc: feature_args(wc.ds, "metrics"),
    log:
        f"{LOGS}/{{ds}}/cluster.log",
    benchmark:
        f"{BENCH}/{{ds}}/cluster.tsv"
    threads: compute("analysis", "threads")
    resources:
        mem_mb=compute("analysis", "mem_mb"),
        runtime=compute("analysis", "runtime"),
    shell:
        "OMP_NUM_THREADS={threads} sciclr cluster --params {params.cfg:q} --records {input.records:q} "
        "--features {params.features:q} --out {output:q} > {log:q} 2>&1"


rule figures:
    input:
        records=processed("{ds}", "records.tsv"),
        features=lambda wc: list(feature_sets(wc.ds, "metrics").values()),
        predictions=f"{R}/{{ds}}/metrics/predictions.tsv",
        train_metrics=f"{R}/{{ds}}/runs/ssl/metrics.csv",
    output:
        report(
            directory(f"{R}/{{ds}}/figures"),
            patterns=["{figure}.png"],
            caption="../report/figures.rst",
            category="{ds}",
        ),
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
        features=lambda wc: feature_args(wc.ds, "metrics"),
        run_dir=lambda wc, input: os.path.dirname(input.train_metrics),
    log:
        f"{LOGS}/{{ds}}/figures.log",
    benchmark:
        f"{BENCH}/{{ds}}/figures.tsv"
    threads: compute("analysis", "threads")
    resources:
        mem_mb=compute("analysis", "mem_mb"),
        runtime=compute("analysis", "runtime"),
    shell:
        "OMP_NUM_THREADS={threads} sciclr figures --params {params.cfg:q} --records {input.records:q} "
        "--features {params.features:q} --predictions {input.predictions:q} "
        "--run-dir {params.run_dir:q} --out-dir {output:q} > {log:q} 2>&1"
