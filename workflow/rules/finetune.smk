# Target `finetune`: the SSL encoder + a task head trained end to end on each task, against the
# same architecture from random initialisation (same subset, budget and early stopping), at
# each fraction of the train labels; scored with bootstrap CIs and paired SSL-minus-scratch
# differences. Not part of the default target (it does not fit the default run's budget).


# a misspelt finetune.tasks entry stops here, before any job, with one line
try:
    for _ds in ALL_DATASETS:
        finetune_tasks(_ds)
except ValueError as err:
    sys.exit(f"sciclr: {err}")


rule finetune_run:
    input:
        unpack(finetune_inputs),
    output:
        predictions=f"{R}/{{ds}}/finetune/{{task}}/{{init}}_{{fraction}}/predictions.tsv",
        metrics=f"{R}/{{ds}}/finetune/{{task}}/{{init}}_{{fraction}}/metrics.csv",
        summary=f"{R}/{{ds}}/finetune/{{task}}/{{init}}_{{fraction}}/summary.json",
    log:
        f"{LOGS}/{{ds}}/finetune/{{task}}_{{init}}_{{fraction}}.log",
    benchmark:
        f"{BENCH}/{{ds}}/finetune/{{task}}_{{init}}_{{fraction}}.tsv"
    wildcard_constraints:
        task=finetune_task_pattern(),
        init="ssl|scratch",
        fraction=r"[0-9]+(\.[0-9]+)?(e-?[0-9]+)?",
    conda:
        "../../environment.yml"
    threads: compute("train", "threads")
    resources:
        mem_mb=job_mem_mb("finetune_run", "train"),
        runtime=compute("train", "runtime"),
        gpu=min(compute("train", "gpus"), 1),
    params:
        cfg=lambda wc: finetune_params(wc.ds),
        data=lambda wc, input: os.path.dirname(input.data),
        out=lambda wc, output: os.path.dirname(output.predictions),
        checkpoint=lambda wc, input: (
            f"--checkpoint {shlex.quote(input.checkpoint)}"
            if "checkpoint" in input.keys()
            else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} sciclr finetune --params {params.cfg:q} "
        "--data {params.data:q} --task {wildcards.task:q} --fraction {wildcards.fraction:q} "
        "{params.checkpoint} --out {params.out:q} > {log:q} 2>&1"


rule finetune_summary:
    input:
        records=processed("{ds}", "records.tsv"),
        predictions=finetune_predictions,
    output:
        table=f"{R}/{{ds}}/metrics/finetune.tsv",
        comparisons=f"{R}/{{ds}}/metrics/finetune_comparisons.tsv",
    log:
        f"{LOGS}/{{ds}}/finetune_summary.log",
    benchmark:
        f"{BENCH}/{{ds}}/finetune_summary.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("finetune_summary", "analysis"),
        runtime=compute("analysis", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, ANALYSIS_KEYS),
        runs=finetune_run_args,
    shell:
        "sciclr finetune-summary --params {params.cfg:q} --records {input.records:q} "
        "--runs {params.runs:q} --out {output.table:q} "
        "--comparisons {output.comparisons:q} > {log:q} 2>&1"


rule finetune:
    input:
        expand(f"{R}/{{ds}}/metrics/finetune.tsv", ds=DATASETS),
        expand(f"{R}/{{ds}}/metrics/finetune_comparisons.tsv", ds=DATASETS),
