# The self-contained HTML report (and the optional temperature sweep).


rule report:
    input:
        unpack(report_inputs),
    output:
        report(REPORT, caption="../report/report.rst", category="Report"),
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCH}/report.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("report", "analysis"),
        runtime=compute("analysis", "runtime"),
    params:
        cfg=lambda wc: json.dumps(
            {
                "datasets": {
                    ds: json.loads(params_json(ds, REPORT_KEYS, units=True))
                    for ds in DATASETS
                }
            },
            sort_keys=True,
        ),
        # data set -> {kind: path} from the named inputs `{ds}__{kind}` (kinds have no "__")
        inputs=lambda wc, input: json.dumps(
            {
                ds: {
                    name.rsplit("__", 1)[1]: input[name]
                    for name in input.keys()
                    if name.rsplit("__", 1)[0] == ds
                }
                for ds in DATASETS
            }
        ),
    shell:
        "sciclr report --params {params.cfg:q} --inputs {params.inputs:q} "
        "--out {output:q} > {log:q} 2>&1"


rule sweep_summary:
    input:
        probes=lambda wc: expand(
            f"{R}/{wc.ds}/sweep/{{run}}/probe.tsv", run=sweep_runs()
        ),
        metrics=lambda wc: expand(
            f"{R}/{wc.ds}/runs/{{run}}/metrics.csv", run=sweep_runs()
        ),
    output:
        table=report(
            f"{R}/{{ds}}/sweep/summary.tsv",
            caption="../report/sweep.rst",
            category="{ds}",
        ),
        figure=report(
            f"{R}/{{ds}}/sweep/summary.png",
            caption="../report/sweep.rst",
            category="{ds}",
        ),
    log:
        f"{LOGS}/{{ds}}/sweep_summary.log",
    benchmark:
        f"{BENCH}/{{ds}}/sweep_summary.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("sweep_summary", "analysis"),
        runtime=compute("analysis", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
        inputs=lambda wc, input: [
            f"{run[3:]}={p}={m}"
            for run, p, m in zip(sweep_runs(), input.probes, input.metrics)
        ],
    shell:
        "sciclr sweep-summary --params {params.cfg:q} --inputs {params.inputs:q} "
        "--out {output.table:q} --figure {output.figure:q} > {log:q} 2>&1"


rule sweep:
    input:
        expand(f"{R}/{{ds}}/sweep/summary.tsv", ds=sweep_datasets()),
