"""fcnseg: Fully Convolutional Networks for semantic segmentation (Long, Shelhamer, Darrell 2015)."""

from fcnseg.errors import FcnsegError

__version__ = "0.1.0"

__all__ = ["FcnsegError", "__version__"]
