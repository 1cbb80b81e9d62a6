# The self-contained HTML report (and the optional temperature sweep).


def report_inputs(wc=None):
    files = {}
    for ds in DATASETS:
        files[f"{ds}_probe"] = f"{R}/{ds}/metrics/probe.tsv"
        files[f"{ds}_cluster"] = f"{R}/{ds}/metrics/cluster.tsv"
        files[f"{ds}_figures"] = f"{R}/{ds}/figures"
        files[f"{ds}_summary"] = processed(ds, "summary.json")
        files[f"{ds}_train"] = f"{R}/{ds}/runs/ssl/train_summary.json"
    return files


rule report:
    input:
        unpack(report_inputs),
    output:
        report(REPORT, caption="../report/report.rst", category="Report"),
    params:
        datasets=DATASETS,
        results=R,
        targets=lambda wc: json.dumps(
            {ds: ds_cfg(ds)["analysis"]["targets"] for ds in DATASETS}, sort_keys=True
        ),
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCH}/report.tsv"
    threads: 1
    resources:
        mem_mb=compute("analysis", "mem_mb"),
        runtime=compute("analysis", "runtime"),
    shell:
        "sciclr report --results {params.results:q} --datasets {params.datasets:q} "
        "--out {output:q} > {log:q} 2>&1"


rule sweep_summary:
    input:
        probes=lambda wc: expand(f"{R}/{wc.ds}/sweep/{{run}}/probe.tsv", run=sweep_runs()),
        metrics=lambda wc: expand(f"{R}/{wc.ds}/runs/{{run}}/metrics.csv", run=sweep_runs()),
    output:
        table=report(f"{R}/{{ds}}/sweep/summary.tsv", caption="../report/sweep.rst", category="{ds}"),
        figure=report(f"{R}/{{ds}}/sweep/summary.png", caption="../report/sweep.rst", category="{ds}"),
    params:
        inputs=lambda wc, input: [
            f"{run[3:]}={p}={m}" for run, p, m in zip(sweep_runs(), input.probes, input.metrics)
        ],
    log:
        f"{LOGS}/{{ds}}/sweep_summary.log",
    benchmark:
        f"{BENCH}/{{ds}}/sweep_summary.tsv"
    threads: 1
    resources:
        mem_mb=compute("analysis", "mem_mb"),
        runtime=compute("analysis", "runtime"),
    shell:
        "sciclr sweep-summary --inputs {params.inputs:q} --out {output.table:q} "
        "--figure {output.figure:q} > {log:q} 2>&1"


rule sweep:
    input:
        expand(f"{R}/{{ds}}/sweep/summary.tsv", ds=sweep_datasets()),
