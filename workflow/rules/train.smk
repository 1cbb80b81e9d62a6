# Contrastive training (run `ssl`, or `tau<T>` for the temperature sweep) and frozen embeddings.


rule train:
    input:
        unpack(train_inputs),
    output:
        checkpoint=f"{R}/{{ds}}/runs/{{run}}/checkpoint.pt",
        metrics=f"{R}/{{ds}}/runs/{{run}}/metrics.csv",
        summary=f"{R}/{{ds}}/runs/{{run}}/train_summary.json",
        similarities=f"{R}/{{ds}}/runs/{{run}}/similarities.npz",
    log:
        f"{LOGS}/{{ds}}/train_{{run}}.log",
    benchmark:
        f"{BENCH}/{{ds}}/train_{{run}}.tsv"
    # training is the longest chain of a run: start it before the other data set's analysis
    priority: 10
    conda:
        "../../environment.yml"
    threads: compute("train", "threads")
    resources:
        mem_mb=job_mem_mb("train", "train"),
        runtime=compute("train", "runtime"),
        gpu=compute("train", "gpus"),
    params:
        cfg=lambda wc: params_json(wc.ds, TRAIN_KEYS, **run_overrides(wc.run)),
        data=lambda wc, input: os.path.dirname(input.data),
        out=lambda wc, output: os.path.dirname(output.checkpoint),
        # Not outputs on purpose: Snakemake deletes a job's outputs before it (re)starts and
        # after it fails, and the resume state must survive exactly that (SIGTERM, retries).
        resume=lambda wc: run_file(wc, "last.pt"),
        tensorboard=lambda wc: run_file(wc, "tensorboard"),
        init=lambda wc, input: (
            f"--init {shlex.quote(input.init)}" if "init" in input.keys() else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} sciclr train --params {params.cfg:q} --data {params.data:q} "
        "--out {params.out:q} --resume {params.resume:q} {params.init} "
        "--tensorboard-dir {params.tensorboard:q} > {log:q} 2>&1"


rule embed:
    input:
        unpack(embed_inputs),
    output:
        f"{R}/{{ds}}/embeddings/{{emb}}.npz",
    log:
        f"{LOGS}/{{ds}}/embed_{{emb}}.log",
    benchmark:
        f"{BENCH}/{{ds}}/embed_{{emb}}.tsv"
    conda:
        "../../environment.yml"
    threads: compute("train", "threads")
    resources:
        mem_mb=job_mem_mb("embed", "train"),
        runtime=compute("train", "runtime"),
    params:
        # the untrained baseline depends on the model and its seed; a trained one on its
        # checkpoint; both on the embedding batch size (the only other train key embed reads)
        cfg=lambda wc: params_json(
            wc.ds,
            EMBED_KEYS,
            train={k: ds_cfg(wc.ds)["train"][k] for k in ("seed", "embed_batch_size")},
        ),
        data=lambda wc, input: os.path.dirname(input.data),
        checkpoint=lambda wc, input: (
            f"--checkpoint {shlex.quote(input.checkpoint)}"
            if "checkpoint" in input.keys()
            else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} sciclr embed --params {params.cfg:q} --data {params.data:q} "
        "{params.checkpoint} --out {output:q} > {log:q} 2>&1"
