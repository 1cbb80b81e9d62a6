# Paths and parameter helpers shared by every rule file.
import json
import os
import shlex

from sciclr.domains import get_domain

R = config["results"]
ALL_DATASETS = list(config["datasets"])
DATASETS = config["run_datasets"] or ALL_DATASETS  # what the default target runs
REPORT = f"{R}/report.html"
LOGS = f"{R}/logs"
BENCH = f"{R}/benchmarks"

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
PARSE_KEYS = ["name", "domain", "input", "format", "cif_column", "id_column"]
FEATURE_KEYS = ["name", "domain", "baselines"]
# training also records how its data was read (preprocess, id/CIF columns): the checkpoint then
# preprocesses new files the same way (`sciclr embed --checkpoint ... --input ...`)
TRAIN_KEYS = [
    "name",
    "domain",
    "tasks",
    "views",
    "model",
    "train",
    "device",
    "preprocess",
    "id_column",
    "cif_column",
]
EMBED_KEYS = ["name", "domain", "views", "model", "device"]
ANALYSIS_KEYS = ["name", "domain", "tasks", "analysis"]
# + where the encoder comes from and what its views share
REPORT_KEYS = [*ANALYSIS_KEYS, "pretrained", "train", "model", "views"]


wildcard_constraints:
    ds="|".join(ALL_DATASETS),
    run=r"ssl|tau[0-9.]+",
    emb=r"ssl|untrained|tau[0-9.]+",
    shard=r"\d+",
    n=r"\d+",
    name=r"[A-Za-z0-9_]+",


def ds_cfg(ds):
    return config["datasets"][ds]


def params_json(ds, keys, units=False, **override):
    """The data set's config restricted to ``keys`` as canonical JSON (rule params); a task's
    ``unit`` only where it is shown (``units``: figures, report), so adding one reruns nothing
    else."""
    cfg = ds_cfg(ds)
    sub = {k: cfg[k] for k in keys if k in cfg}
    if "tasks" in sub and not units:
        sub["tasks"] = [
            {k: v for k, v in t.items() if k != "unit"} for t in sub["tasks"]
        ]
    if keys is INGEST_KEYS:
        # preprocessing reads label columns, not how they are scored, and of the model only
        # which encoder it is (the transformer reads stored k-mer tokens)
        sub["tasks"] = [
            {"column": t["column"], "type": t["type"]} for t in cfg["tasks"]
        ]
        if "encoder" in cfg["model"]:
            sub["model"] = {"encoder": cfg["model"]["encoder"]}
    if keys is PARSE_KEYS:  # parsing reads the disorder policy, not the graph settings
        sub["preprocess"] = {"occupancy": cfg["preprocess"]["occupancy"]}
    if keys is TRAIN_KEYS:  # how many jobs read the inputs does not change the model
        sub["preprocess"] = {
            k: v for k, v in cfg["preprocess"].items() if k != "shards"
        }
    for section, values in override.items():
        sub[section] = {**sub.get(section, {}), **values}
    return json.dumps(sub, sort_keys=True)


def run_overrides(run):
    """`ssl` is the configured training; `tau0.2` retrains at another temperature (sweep)."""
    return {} if run == "ssl" else {"train": {"temperature": float(run[3:])}}


def domain(ds):
    return get_domain(ds_cfg(ds)["domain"])


def baseline_names(ds):
    """The data set's handcrafted feature sets, as its domain names them."""
    return domain(ds).baseline_names(ds_cfg(ds))


def n_shards(ds):
    return ds_cfg(ds)["preprocess"]["shards"]


def shard_dir(wc):
    return f"{R}/{wc.ds}/processed/shards/{wc.shard}of{wc.n}"


def preprocess_inputs(wc):
    """Raw inputs and label table; the shard's parsed structures for a domain that parses in
    a step of its own."""
    cfg = ds_cfg(wc.ds)
    inputs = {"raw": cfg["input"] + ([cfg["labels"]] if cfg["labels"] else [])}
    if domain(wc.ds).parse_stage:
        inputs["parsed"] = f"{shard_dir(wc)}/parsed.pt"
    return inputs


def processed(ds, name="data.pt"):
    return f"{R}/{ds}/processed/{name}"


def compute(step, key):
    return config["compute"][step][key]


def sweep_datasets():
    return config["temperature_sweep"]["datasets"] or DATASETS


def sweep_runs():
    return [f"tau{t:g}" for t in config["temperature_sweep"]["temperatures"]]


def pretrained_checkpoint(ds):
    """The checkpoint a data set's encoder starts from (``pretrained:``), or None."""
    source = ds_cfg(ds)["pretrained"]
    if not source:
        return None
    return source.get("checkpoint") or f"{R}/{source['dataset']}/runs/ssl/checkpoint.pt"


def trains(ds):
    """Whether the data set trains its own encoder (not a pretrained one used as it is)."""
    return not (ds_cfg(ds)["pretrained"] and ds_cfg(ds)["train"]["epochs"] == 0)


def encoder_checkpoint(ds, run):
    """The checkpoint behind ``embeddings/<run>.npz``."""
    if run == "ssl" and not trains(ds):
        return pretrained_checkpoint(ds)
    return f"{R}/{ds}/runs/{run}/checkpoint.pt"


def train_inputs(wc):
    inputs = {
        "data": processed(wc.ds, "data.pt"),
        "records": processed(wc.ds, "records.tsv"),
    }
    if pretrained_checkpoint(wc.ds):
        inputs["init"] = pretrained_checkpoint(wc.ds)
    return inputs


def embed_inputs(wc):
    inputs = {
        "data": processed(wc.ds, "data.pt"),
        "records": processed(wc.ds, "records.tsv"),
    }
    if wc.emb != "untrained":
        inputs["checkpoint"] = encoder_checkpoint(wc.ds, wc.emb)
    return inputs


def figures_inputs(wc):
    """Records, features, predictions, label-efficiency curves, and what the SSL training left
    (metrics, val evaluations, similarities; nothing when the data set uses a pretrained
    encoder as it is)."""
    inputs = {
        "records": processed(wc.ds, "records.tsv"),
        "features": list(feature_sets(wc.ds, "metrics").values()),
        "predictions": f"{R}/{wc.ds}/metrics/predictions.tsv",
        "label_efficiency": f"{R}/{wc.ds}/metrics/label_efficiency.tsv",
    }
    if trains(wc.ds):
        run = f"{R}/{wc.ds}/runs/ssl"
        inputs["train_metrics"] = f"{run}/metrics.csv"
        # the val evaluations per epoch, drawn beside the loss
        inputs["train_summary"] = f"{run}/train_summary.json"
        inputs["similarities"] = f"{run}/similarities.npz"
    return inputs


EMBEDDINGS = [
    "ssl",
    "untrained",
]  # learned (or random) encoders; the rest are baselines


def feature_sets(ds, scope):
    """Feature sets scored in ``scope``: the main comparison, or one sweep run."""
    if scope == "metrics":
        names = list(EMBEDDINGS)
        files = [f"{R}/{ds}/embeddings/{n}.npz" for n in names]
        names += baseline_names(ds)
        files += [f"{R}/{ds}/features/{n}.npz" for n in baseline_names(ds)]
    else:  # sweep/tau<T>
        run = scope.split("/", 1)[1]
        names, files = ["ssl"], [f"{R}/{ds}/embeddings/{run}.npz"]
    return dict(zip(names, files))


def feature_args(ds, scope):
    return [f"{n}={p}" for n, p in feature_sets(ds, scope).items()]


def run_file(wc, name):
    return f"{R}/{wc.ds}/runs/{wc.run}/{name}"


def report_inputs(wc=None):
    """Every file the report reads, named `{ds}__{kind}` (the rule passes exactly these).

    The sweep's summary and the fine-tuning tables are shown once `snakemake sweep` /
    `snakemake finetune` has made them: declared only when they exist at DAG-building time: a
    newer one reruns the report, a missing one is not built.
    """
    files = {}
    for ds in DATASETS:
        kinds = {
            "probe_metrics": f"{R}/{ds}/metrics/probe.tsv",
            "recovery": f"{R}/{ds}/metrics/recovery.tsv",
            "cluster_metrics": f"{R}/{ds}/metrics/cluster.tsv",
            "verdict": f"{R}/{ds}/metrics/verdict.tsv",
            "label_efficiency": f"{R}/{ds}/metrics/label_efficiency.tsv",
            "figures": f"{R}/{ds}/figures",
            "preprocess_summary": processed(ds, "summary.json"),
        }
        if trains(
            ds
        ):  # a pretrained encoder used as it is has no training of its own here
            kinds["train_summary"] = f"{R}/{ds}/runs/ssl/train_summary.json"
            kinds["training_metrics"] = f"{R}/{ds}/runs/ssl/metrics.csv"
        for kind, path in (
            ("sweep_table", f"{R}/{ds}/sweep/summary.tsv"),
            ("sweep_figure", f"{R}/{ds}/sweep/summary.png"),
            ("finetune", f"{R}/{ds}/metrics/finetune.tsv"),
            ("finetune_comparisons", f"{R}/{ds}/metrics/finetune_comparisons.tsv"),
        ):
            if os.path.exists(path):
                kinds[kind] = path
        files.update({f"{ds}__{kind}": path for kind, path in kinds.items()})
    return files


# --- fine-tuning against training from scratch (target `finetune`, workflow/rules/finetune.smk)

FINETUNE_INITS = ["ssl", "scratch"]
# what a fine-tuning run reads: the model is built from model/views (ssl: from the checkpoint,
# whose model section must equal the data set's), scratch is seeded by train.seed, autocast
# follows train.amp, and the task's main metric comes from the analysis settings
FINETUNE_KEYS = ["name", "domain", "tasks", "views", "model", "device", "finetune"]
FINETUNE_ANALYSIS_KEYS = ["primary_metric", "targets", "class_weight"]


def finetune_tasks(ds):
    """Names of the data set's fine-tuned tasks (configured tasks; derived ones never)."""
    names = [t.get("name", t["column"]) for t in ds_cfg(ds)["tasks"]]
    wanted = ds_cfg(ds)["finetune"]["tasks"] or names
    unknown = [t for t in wanted if t not in names]
    if unknown:
        raise ValueError(
            f"config: datasets.{ds}.finetune.tasks: {unknown} not among the configured "
            f"tasks {names}"
        )
    return wanted


def finetune_fractions(ds):
    """The label fractions as they appear in paths: 0.1, 1 (sorted, no repeats)."""
    fractions = sorted({float(x) for x in ds_cfg(ds)["finetune"]["fractions"]})
    return [f"{f:g}" for f in fractions]


def finetune_run_dir(ds, task, init, fraction):
    return f"{R}/{ds}/finetune/{task}/{init}_{fraction}"


def finetune_params(ds):
    cfg = ds_cfg(ds)
    return params_json(
        ds,
        FINETUNE_KEYS,
        train={k: cfg["train"][k] for k in ("seed", "amp")},
        analysis={k: cfg["analysis"][k] for k in FINETUNE_ANALYSIS_KEYS},
    )


def finetune_inputs(wc):
    """Processed data; the SSL encoder's checkpoint for the `ssl` runs only."""
    inputs = {
        "data": processed(wc.ds, "data.pt"),
        "records": processed(wc.ds, "records.tsv"),
    }
    if wc.init == "ssl":
        inputs["checkpoint"] = encoder_checkpoint(wc.ds, "ssl")
    return inputs


def finetune_runs(ds):
    """`(task, init, fraction)` of every run of a data set."""
    return [
        (task, init, fraction)
        for task in finetune_tasks(ds)
        for fraction in finetune_fractions(ds)
        for init in FINETUNE_INITS
    ]


def finetune_predictions(wc):
    runs = finetune_runs(wc.ds)
    return [f"{finetune_run_dir(wc.ds, *run)}/predictions.tsv" for run in runs]


def finetune_run_args(wc):
    """`TASK/INIT/FRACTION=PATH` per run, as `sciclr finetune-summary --runs` reads them."""
    return [
        f"{task}/{init}/{fraction}={finetune_run_dir(wc.ds, task, init, fraction)}/predictions.tsv"
        for task, init, fraction in finetune_runs(wc.ds)
    ]


def finetune_task_pattern():
    """The `task` wildcard: any fine-tuned task name of any data set."""
    import re

    names = {t for ds in ALL_DATASETS for t in finetune_tasks(ds)}
    return "|".join(re.escape(t) for t in sorted(names, key=len, reverse=True))


# Memory a job asks for (`resources: mem_mb`), from the size of its input files: a fixed base
# plus a factor per MB of input, never below compute.<step>.mem_mb (the floor); a retry
# (attempt 2, 3) asks for 1.5x, 2x. Base and factor: peak RSS against input MB measured by
# `python benchmarks/scaling.py` (2 cores; README, Scaling), the line through the two largest
# sizes, rounded up so that it also covers the smaller sizes and the default run's benchmark
# files. The analysis rules' figures are the DNA 4x and 16x runs of 2026-12-02
# (`--quick --sizes dna=4,16`, commit 48a0969), whose inputs (embeddings and feature files)
# are the largest; parse_shard is crystals only. compute.<step>.mem_mb_per_input_mb replaces
# every factor of the step. Sizes are summed here rather than read from `input.size_mb`, which
# is <TBD> for inputs that do not exist yet (a dry run's plan); Snakemake re-evaluates
# resources once a job's inputs exist, before it starts.
MEM_MODEL = {  # rule: (base MB, MB per input MB)
    # crystals 414 -> 448 -> 563 MB for 4.0 -> 15.9 -> 63.6 MB of CIFs
    "parse_shard": (450, 3.0),
    # DNA 369 -> 515 -> 982 MB for 8.0 -> 29.3 -> 117 MB of FASTA; crystal graphs (built 256
    # structures at a time) 556 -> 653 -> 1032 MB for 1.4 -> 5.5 -> 22.2 MB of parsed arrays
    # (its input is the parse stage's output): one factor per domain
    "preprocess_shard": {"dna": (400, 7.0), "materials": (550, 25.0)},
    # DNA 351 -> 411 -> 606 MB for 7.2 -> 28.0 -> 111 MB; crystals 1210 MB for 238 MB
    "gather": (450, 4.0),
    # written 2,048 records at a time: DNA 6-mers 462 -> 675 MB for 28.8 -> 115 MB; lattice
    # 578 -> 699 MB for 15.6 -> 240 MB
    "features": (450, 2.0),
    # one epoch with its val check, the heap trimmed after each step: DNA 2106 -> 1780 -> 1952
    # MB for 7.4 -> 28.8 -> 114.6 MB (1761 in the default run's 10 epochs); crystals
    # 1231-1254 -> 1334-1378 MB for 15.6 -> 240 MB (1256 in the default run's 20 epochs)
    "train": {"dna": (2800, 1.0), "materials": (2150, 1.5)},
    # streamed in chunks, read pages dropped: DNA 1130 -> 1178 -> 1231 MB for 9.7 -> 31.1 ->
    # 116.8 MB; crystals 732 -> 861 MB for 15.6 -> 246 MB (blocks of 16 k edges)
    "embed": (1400, 2.0),
    # the analysis steps read the embeddings and feature files (DNA 63 -> 251 -> 1004 MB)
    "probe": (1200, 1.2),  # DNA 574 -> 1468 -> 2309 MB (capped fits beyond 20 k items)
    "cluster": (1000, 1.3),  # DNA 581 -> 1295 -> 2234 MB
    # DNA 1071 -> 918 -> 1656 MB and crystals 1200 MB (1x) for the main process; its two
    # fitting workers add their share
    "label_efficiency": (1300, 1.5),
    "recovery": (1200, 1.5),  # DNA 678 -> 1543 -> 2600 MB
    "figures": (900, 1.1),  # DNA 893 -> 1033 -> 1821 MB for 65 -> 255 -> 1020 MB
    "verdict": (400, 10.0),  # DNA 214 -> 422 MB for 8.4 -> 30.3 MB of predictions
    # reads the metric tables (a row per metric, not per item): 127-129 MB at every size
    "report": (400, 2.0),
    "sweep_summary": (400, 2.0),  # the sweep runs' metric tables, as the report's
}
# fine-tuning holds what training does (the payload mapped, one encoder, its optimiser) plus a
# task head; its summary reads one predictions table per run, as verdict reads its one
MEM_MODEL["finetune_run"] = MEM_MODEL["train"]
MEM_MODEL["finetune_summary"] = MEM_MODEL["verdict"]


def job_mem_mb(rule, step):
    """`resources: mem_mb` of ``rule`` (a job of config compute ``step``): see MEM_MODEL."""

    def mem_mb(wildcards, input, attempt):
        model = MEM_MODEL[rule]
        if isinstance(model, dict):
            model = model[ds_cfg(wildcards.ds)["domain"]]
        base, factor = model
        size_mb = sum(os.path.getsize(f) for f in input if os.path.isfile(f)) / 2**20
        override = compute(step, "mem_mb_per_input_mb")
        need = base + (factor if override is None else override) * size_mb
        return int(max(compute(step, "mem_mb"), need) * (1 + 0.5 * (attempt - 1)))

    return mem_mb
