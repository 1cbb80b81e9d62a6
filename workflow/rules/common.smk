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
    "materials": lambda ds: ["element_fractions"],
}

# which config keys each step depends on: a change reruns exactly the steps that read it
INGEST_KEYS = ["name", "domain", "input", "format", "cif_column", "labels", "id_column",
               "split_column", "split_fractions", "split_seed", "tasks", "preprocess"]
FEATURE_KEYS = ["name", "domain", "baselines"]
TRAIN_KEYS = ["name", "domain", "tasks", "views", "model", "train", "device"]
EMBED_KEYS = ["name", "domain", "model", "device"]
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
