"""Datasets, the Caffe input convention, palettes and joint transforms.

`build_dataset(name, root, split, **opts)` reads a dataset from its published layout as
(image, label) pairs: image float32 C x H x W, BGR, 0-255, minus the dataset's mean; label
int64 H x W, void 255.
"""

from .build import build_dataset, list_datasets
from .camvid import CAMVID_INFO, CamVidDataset
from .convention import (
    VOC_MEAN_BGR,
    VOID,
    DatasetInfo,
    bitmap_palette,
    colorize,
    deprocess,
    overlay,
    preprocess,
)
from .dataset import JointTransform, Sample, SegmentationDataset
from .folder import FolderDataset
from .nyud import NYUDDataset, nyud_info
from .pascal_context import PASCALContextDataset
from .siftflow import SIFTFLOW_GEOMETRIC_INFO, SIFTFLOW_INFO, SIFTFlowDataset
from .transforms import collate_pad
from .voc import SBD_INFO, VOC_INFO, SBDDataset, VOCDataset

__all__ = [
    "CAMVID_INFO",
    "SBD_INFO",
    "SIFTFLOW_GEOMETRIC_INFO",
    "SIFTFLOW_INFO",
    "VOC_INFO",
    "VOC_MEAN_BGR",
    "VOID",
    "CamVidDataset",
    "DatasetInfo",
    "FolderDataset",
    "JointTransform",
    "NYUDDataset",
    "PASCALContextDataset",
    "SBDDataset",
    "SIFTFlowDataset",
    "Sample",
    "SegmentationDataset",
    "VOCDataset",
    "bitmap_palette",
    "build_dataset",
    "collate_pad",
    "colorize",
    "deprocess",
    "list_datasets",
    "nyud_info",
    "overlay",
    "preprocess",
]
