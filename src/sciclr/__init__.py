"""sciclr: multi-view InfoNCE contrastive learning for DNA sequences and crystal structures."""

__version__ = "0.1.0"
