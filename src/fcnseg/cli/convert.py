"""``fcnseg convert``: Caffe and PyTorch weights to fcnseg's safetensors (fcnseg.io)."""

from fcnseg.io.command import add_convert_parser as add_parser
from fcnseg.io.command import run_convert as run

__all__ = ["add_parser", "run"]
