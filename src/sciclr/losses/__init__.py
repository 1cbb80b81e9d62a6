"""Multi-view InfoNCE losses (see :mod:`sciclr.losses.infonce`)."""

from sciclr.losses.infonce import InfoNCE, InfoNCEDiagnostics, info_nce

__all__ = ["InfoNCE", "InfoNCEDiagnostics", "info_nce"]
