"""Datasets, palettes and joint transforms.

`build_dataset(name, root, split, **opts)` reads a dataset from its published layout as
(image, label) pairs: image float32 C x H x W in an input convention (by default the dataset's
own, Caffe's: BGR, 0-255, minus the dataset's mean; see `fcnseg.convention`); label int64
H x W, void 255.
"""

from .ade20k import ADE20K_INFO, ADE20KDataset, ade20k_score, ade20k_score_text
from .build import PATH_OPTIONS, build_dataset, list_datasets, split_names
from .camvid import CAMVID_INFO, CamVidDataset
from .cityscapes import (
    CITYSCAPES_INFO,
    CITYSCAPES_LABELS,
    CityscapesDataset,
    cityscapes_label_ids,
    cityscapes_train_ids,
)
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .folder import FolderDataset
from .nyud import NYUDDataset, nyud_info
from .palettes import VOC_MEAN_BGR, VOID, bitmap_palette, colorize, overlay
from .pascal_context import PASCALContextDataset
from .siftflow import SIFTFLOW_GEOMETRIC_INFO, SIFTFLOW_INFO, SIFTFlowDataset
from .synthetic import SYNTHETIC, SyntheticShapes, synthetic_dataset
from .transforms import collate_pad
from .voc import SBD_INFO, VOC_INFO, SBDDataset, VOCDataset

__all__ = [
    "ADE20K_INFO",
    "CITYSCAPES_INFO",
    "CITYSCAPES_LABELS",
    "ADE20KDataset",
    "CityscapesDataset",
    "ade20k_score",
    "ade20k_score_text",
    "cityscapes_label_ids",
    "cityscapes_train_ids",
    "CAMVID_INFO",
    "PATH_OPTIONS",
    "SBD_INFO",
    "SIFTFLOW_GEOMETRIC_INFO",
    "SIFTFLOW_INFO",
    "SYNTHETIC",
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
    "SyntheticShapes",
    "VOCDataset",
    "bitmap_palette",
    "split_names",
    "build_dataset",
    "collate_pad",
    "colorize",
    "list_datasets",
    "nyud_info",
    "overlay",
    "synthetic_dataset",
]
