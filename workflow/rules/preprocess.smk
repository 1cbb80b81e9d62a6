# Raw files -> (parsed structures) -> shards -> one processed data set (+ rejects) -> baselines.


rule parse_shard:
    input:
        lambda wc: ds_cfg(wc.ds)["input"],
    output:
        f"{R}/{{ds}}/processed/shards/{{shard}}of{{n}}/parsed.pt",
    log:
        f"{LOGS}/{{ds}}/parse_{{shard}}of{{n}}.log",
    benchmark:
        f"{BENCH}/{{ds}}/parse_{{shard}}of{{n}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("parse_shard", "preprocess"),
        runtime=compute("preprocess", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, PARSE_KEYS),
    shell:
        "sciclr parse --params {params.cfg:q} --shard {wildcards.shard} "
        "--n-shards {wildcards.n} --out {output:q} > {log:q} 2>&1"


rule preprocess_shard:
    input:
        unpack(preprocess_inputs),
    output:
        data=f"{R}/{{ds}}/processed/shards/{{shard}}of{{n}}/data.pt",
        records=f"{R}/{{ds}}/processed/shards/{{shard}}of{{n}}/records.parquet",
        rejects=f"{R}/{{ds}}/processed/shards/{{shard}}of{{n}}/rejects.tsv",
        counts=f"{R}/{{ds}}/processed/shards/{{shard}}of{{n}}/counts.json",
    log:
        f"{LOGS}/{{ds}}/preprocess_{{shard}}of{{n}}.log",
    benchmark:
        f"{BENCH}/{{ds}}/preprocess_{{shard}}of{{n}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("preprocess_shard", "preprocess"),
        runtime=compute("preprocess", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, INGEST_KEYS),
        out=lambda wc, output: os.path.dirname(output.data),
        parsed=lambda wc, input: (
            f"--parsed {shlex.quote(input.parsed)}" if "parsed" in input.keys() else ""
        ),
    shell:
        "sciclr preprocess --params {params.cfg:q} --shard {wildcards.shard} "
        "--n-shards {wildcards.n} {params.parsed} --out {params.out:q} > {log:q} 2>&1"


rule gather:
    input:
        lambda wc: expand(
            f"{R}/{wc.ds}/processed/shards/{{i}}of{n_shards(wc.ds)}/{{f}}",
            i=range(n_shards(wc.ds)),
            f=["data.pt", "records.parquet", "rejects.tsv", "counts.json"],
        ),
    output:
        data=processed("{ds}", "data.pt"),
        records=processed("{ds}", "records.tsv"),
        rejects=processed("{ds}", "rejects.tsv"),
        summary=processed("{ds}", "summary.json"),
    log:
        f"{LOGS}/{{ds}}/gather.log",
    benchmark:
        f"{BENCH}/{{ds}}/gather.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("gather", "preprocess"),
        runtime=compute("preprocess", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, INGEST_KEYS),
        out=lambda wc, output: os.path.dirname(output.data),
        shards=lambda wc, input: list(dict.fromkeys(os.path.dirname(p) for p in input)),
    shell:
        "sciclr gather --params {params.cfg:q} --out {params.out:q} {params.shards:q} > {log:q} 2>&1"


rule features:
    input:
        data=processed("{ds}", "data.pt"),
        records=processed("{ds}", "records.tsv"),
    output:
        f"{R}/{{ds}}/features/{{name}}.npz",
    log:
        f"{LOGS}/{{ds}}/features_{{name}}.log",
    benchmark:
        f"{BENCH}/{{ds}}/features_{{name}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=job_mem_mb("features", "preprocess"),
        runtime=compute("preprocess", "runtime"),
    params:
        cfg=lambda wc: params_json(wc.ds, FEATURE_KEYS),
        data=lambda wc, input: os.path.dirname(input.data),
        out=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "sciclr features --params {params.cfg:q} --data {params.data:q} --out {params.out:q} "
        "--names {wildcards.name} > {log:q} 2>&1"
