"""Views: seeded, batched augmentations of each domain, drawn on the batch's device.

:data:`PROFILE_LABEL` names the profiler range of view drawing: a domain model wraps its views
in ``torch.profiler.record_function(PROFILE_LABEL)`` and the training engine counts that time as
data path (``train_summary.json``).
"""

PROFILE_LABEL = "sciclr.views"

__all__ = ["PROFILE_LABEL"]
