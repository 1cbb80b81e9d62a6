"""Multi-view InfoNCE losses: conventions and theory in :mod:`sciclr.losses.infonce`."""

from sciclr.losses.diagnostics import InfoNCEDiagnostics
from sciclr.losses.distributed import gather_with_grad
from sciclr.losses.infonce import InfoNCE, info_nce
from sciclr.losses.queue import NegativeQueue

__all__ = ["InfoNCE", "InfoNCEDiagnostics", "NegativeQueue", "gather_with_grad", "info_nce"]
