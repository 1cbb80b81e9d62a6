"""sciclr: multi-view InfoNCE contrastive learning for DNA sequences and crystal structures."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sciclr")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
