# Paths and parameter helpers shared by every rule file.
import json
import os
import shlex

R = config["results"]
DATASETS = list(config["datasets"])
REPORT = f"{R}/report.html"
LOGS = f"{R}/logs"
BENCH = f"{R}/benchmarks"

# what a handcrafted baseline is called, per domain (the files the `features` rule writes)
BASELINES = {
    "dna": lambda ds: [f"kmer{k}" for k in ds["baselines"]["kmer_k"]],
    "materials": lambda ds: ["element_fractions", "lattice"],
}

# which config keys each step depends on: a change reruns exactly the steps that read it
INGEST_KEYS = [
    "name",
    "domain",
    "input",
    "format",
    "cif_column",
    "labels",
    "id_column",
    "split_column",
    "split_fractions",
    "split_seed",
    "tasks",
    "preprocess",
]
FEATURE_KEYS = ["name", "domain", "baselines"]
TRAIN_KEYS = ["name", "domain", "tasks", "views", "model", "train", "device"]
EMBED_KEYS = ["name", "domain", "views", "model", "device"]
ANALYSIS_KEYS = ["name", "domain", "tasks", "analysis"]


wildcard_constraints:
    ds="|".join(DATASETS),
    run=r"ssl|tau[0-9.]+",
    emb=r"ssl|untrained|tau[0-9.]+",
    shard=r"\d+",
    n=r"\d+",
    name=r"[A-Za-z0-9_]+",


def ds_cfg(ds):
    return config["datasets"][ds]


def params_json(ds, keys, **override):
    """The data set's config restricted to ``keys`` as canonical JSON (rule params)."""
    cfg = ds_cfg(ds)
    sub = {k: cfg[k] for k in keys if k in cfg}
    if (
        keys is INGEST_KEYS
    ):  # preprocessing reads label columns only, not how they are scored
        sub["tasks"] = [
            {"column": t["column"], "type": t["type"]} for t in cfg["tasks"]
        ]
    for section, values in override.items():
        sub[section] = {**sub.get(section, {}), **values}
    return json.dumps(sub, sort_keys=True)


def run_overrides(run):
    """`ssl` is the configured training; `tau0.2` retrains at another temperature (sweep)."""
    return {} if run == "ssl" else {"train": {"temperature": float(run[3:])}}


def baseline_names(ds):
    return BASELINES[ds_cfg(ds)["domain"]](ds_cfg(ds))


def n_shards(ds):
    return int(ds_cfg(ds)["preprocess"].get("shards", 1))


def processed(ds, name="data.pt"):
    return f"{R}/{ds}/processed/{name}"


def compute(step, key):
    return config["compute"][step][key]


def sweep_datasets():
    return config["temperature_sweep"]["datasets"] or DATASETS


def sweep_runs():
    return [f"tau{t:g}" for t in config["temperature_sweep"]["temperatures"]]


def embed_inputs(wc):
    inputs = {
        "data": processed(wc.ds, "data.pt"),
        "records": processed(wc.ds, "records.tsv"),
    }
    if wc.emb != "untrained":
        inputs["checkpoint"] = f"{R}/{wc.ds}/runs/{wc.emb}/checkpoint.pt"
    return inputs


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


def report_inputs(wc=None):
    files = {}
    for ds in DATASETS:
        files[f"{ds}_probe"] = f"{R}/{ds}/metrics/probe.tsv"
        files[f"{ds}_cluster"] = f"{R}/{ds}/metrics/cluster.tsv"
        files[f"{ds}_verdict"] = f"{R}/{ds}/metrics/verdict.tsv"
        files[f"{ds}_figures"] = f"{R}/{ds}/figures"
        files[f"{ds}_summary"] = processed(ds, "summary.json")
        files[f"{ds}_train"] = f"{R}/{ds}/runs/ssl/train_summary.json"
    return files
