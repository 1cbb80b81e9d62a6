"""Evaluation of frozen representations against honest baselines, and the report.

``spec`` (what to evaluate) · ``inputs`` (records, feature files) · ``metrics``/``bootstrap``/
``scoring`` (vectorised metrics with bootstrap CIs) · ``logistic``/``probes`` (linear, k-NN,
random-forest and dummy probes) · ``clustering`` (k-means, HDBSCAN, Leiden) · ``verdict`` (SSL vs
baselines, targets) · ``diagnostics`` (training curves) · ``figures`` · ``sweep`` (temperature
sweep) · ``html``/``report`` (self-contained HTML) · ``browser`` (headless-Chromium check) ·
``cli`` (the ``sciclr`` verbs).
"""
