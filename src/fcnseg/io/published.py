"""The published weights fcnseg converts: the reference FCNs and the ILSVRC classifiers.

Each entry says what a file holds (which fcnseg model, how many classes and which), what input
it expects, and where it comes from. A file names its entry by ``convert(..., source=NAME)`` or
by its file name. Two published files hold two nets each: the SIFT Flow FCNs score semantic and
geometric classes from one trunk (``*-sem`` and ``*-geo`` layers), and the NYUDv2 late-fusion
net runs a colour and an HHA stream (``*color`` and ``*hha`` layers) whose scores are averaged;
an entry picks one of them by the suffix of its layer names.
"""

from __future__ import annotations

from dataclasses import dataclass

from fcnseg.convention import TORCHVISION_IMAGENET, InputConvention, caffe_convention
from fcnseg.data.nyud import MODALITY_CONVENTIONS, NYUD_CLASSES, NYUD_MEAN_BGR
from fcnseg.data.palettes import VOC_MEAN_BGR
from fcnseg.data.pascal_context import CONTEXT_MEAN_BGR
from fcnseg.data.siftflow import SIFTFLOW_CLASSES, SIFTFLOW_GEOMETRIC_CLASSES, SIFTFLOW_MEAN_BGR
from fcnseg.data.voc import VOC_CLASSES
from fcnseg.errors import FcnsegError
from fcnseg.models import VGG16, AlexNet, Classifier, GoogLeNet

FCN = "fcn"
CLASSIFIER = "classifier"

_BERKELEY = "http://dl.caffe.berkeleyvision.org/"

# data/pascal-context/classes-59.txt of the reference, background (index 0) included: VOC's
# 21 classes first, then 39 more.
PASCALCONTEXT_CLASSES = VOC_CLASSES + (
    "bag",
    "bed",
    "bench",
    "book",
    "building",
    "cabinet",
    "ceiling",
    "clothes",
    "computer",
    "cup",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "keyboard",
    "light",
    "mountain",
    "mouse",
    "curtain",
    "platform",
    "sign",
    "plate",
    "road",
    "rock",
    "shelves",
    "sidewalk",
    "sky",
    "snow",
    "bedcloth",
    "track",
    "tree",
    "truck",
    "wall",
    "water",
    "window",
    "wood",
)

# Mean pixels (B, G, R) of the ILSVRC classifiers; the datasets' are fcnseg.data's.
VOC_MEAN = VOC_MEAN_BGR  # ILSVRC's mean image, averaged per channel
VGG16_ILSVRC_MEAN = (103.939, 116.779, 123.68)  # the VGG team's mean pixel
GOOGLENET_MEAN = (104.0, 117.0, 123.0)  # bvlc_googlenet's train_val mean_value
# HHA images are read as stored, without a channel flip (nyud_layers.py); the mean is in the
# file's channel order, recorded as "RGB". The late-fusion net reads colour then HHA.
NYUD_HHA = MODALITY_CONVENTIONS["hha"]
NYUD_COLOR_HHA = MODALITY_CONVENTIONS["color-hha"]


@dataclass(frozen=True)
class Published:
    """One published set of weights.

    Attributes:
        name: the entry's name (the reference's folder name; ``-sem``/``-geo``/``-color``/
            ``-hha`` appended where a file holds two nets).
        filename: the file as published.
        url: where it is published.
        kind: ``"fcn"`` (a segmentation net, loaded as it is) or ``"classifier"`` (an ILSVRC
            classifier, cast into an FCN initialisation).
        backbone: the classifier family the weights fit.
        model: the fcnseg model of an FCN entry; None for a classifier (any model of its
            backbone).
        classes: class names of an FCN entry, index order; None for a classifier.
        convention: the input the weights expect.
        sha1: the SHA-1 of the file where a public text states one, else None.
        suffix: the suffix of the layers that belong to this entry in a two-net file.
        other_suffixes: suffixes of the other net's layers, which are left out.
    """

    name: str
    filename: str
    url: str
    kind: str
    backbone: type[Classifier]
    model: str | None
    classes: tuple[str, ...] | None
    convention: InputConvention
    sha1: str | None = None
    suffix: str = ""
    other_suffixes: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int | None:
        """Classes of an FCN entry; None for a classifier."""
        return None if self.classes is None else len(self.classes)


def _fcn(
    name: str,
    filename: str,
    model: str,
    classes: tuple[str, ...] | list[str],
    convention: InputConvention,
    *,
    backbone: type[Classifier] = VGG16,
    sha1: str | None = None,
    suffix: str = "",
    other_suffixes: tuple[str, ...] = (),
) -> Published:
    return Published(
        name,
        filename,
        _BERKELEY + filename,
        FCN,
        backbone,
        model,
        tuple(classes),
        convention,
        sha1,
        suffix,
        other_suffixes,
    )


def _table(*entries: Published) -> dict[str, Published]:
    table: dict[str, Published] = {}
    for entry in entries:
        if entry.name in table:
            raise ValueError(f"published weights '{entry.name}' listed twice")
        table[entry.name] = entry
    return table


_VOC = caffe_convention(VOC_MEAN)
_SIFTFLOW = caffe_convention(SIFTFLOW_MEAN_BGR)
_SIFTFLOW_HEADS = (
    ("sem", SIFTFLOW_CLASSES, "_sem", ("_geo",)),
    ("geo", SIFTFLOW_GEOMETRIC_CLASSES, "_geo", ("_sem",)),
)
_ILSVRC_MEAN_IMAGE = caffe_convention(VOC_MEAN)  # CaffeNet and AlexNet: the mean image's pixel

# SHA-1s as OpenCV's opencv_extra testdata/dnn/download_models.py and the BVLC model zoo
# readmes state them; no public text gives SHA-256s of these files.
PUBLISHED = _table(
    _fcn("voc-fcn32s", "fcn32s-heavy-pascal.caffemodel", "fcn32s-vgg16", VOC_CLASSES, _VOC,
         sha1="05eb922d7829c39448f57e5ab9d8cd75d6c0be6d"),
    _fcn("voc-fcn16s", "fcn16s-heavy-pascal.caffemodel", "fcn16s-vgg16", VOC_CLASSES, _VOC),
    _fcn("voc-fcn8s", "fcn8s-heavy-pascal.caffemodel", "fcn8s-vgg16", VOC_CLASSES, _VOC,
         sha1="c449ea74dd7d83751d1357d6a8c323fcf4038962"),
    _fcn("voc-fcn8s-atonce", "fcn8s-atonce-pascal.caffemodel", "fcn8s-atonce-vgg16",
         VOC_CLASSES, _VOC),
    _fcn("voc-fcn-alexnet", "fcn-alexnet-pascal.caffemodel", "fcn32s-alexnet", VOC_CLASSES,
         _VOC, backbone=AlexNet),
    _fcn("nyud-fcn32s-color", "nyud-fcn32s-color-heavy.caffemodel", "fcn32s-vgg16",
         NYUD_CLASSES, caffe_convention(NYUD_MEAN_BGR)),
    _fcn("nyud-fcn32s-hha", "nyud-fcn32s-hha-heavy.caffemodel", "fcn32s-vgg16", NYUD_CLASSES,
         NYUD_HHA),
    _fcn("nyud-fcn32s-color-hha", "nyud-fcn32s-color-hha-heavy.caffemodel",
         "fcn32s-rgb-hha-vgg16", NYUD_CLASSES, NYUD_COLOR_HHA),
    _fcn("nyud-fcn32s-color-hha-color", "nyud-fcn32s-color-hha-heavy.caffemodel",
         "fcn32s-vgg16", NYUD_CLASSES, caffe_convention(NYUD_MEAN_BGR), suffix="color",
         other_suffixes=("hha",)),
    _fcn("nyud-fcn32s-color-hha-hha", "nyud-fcn32s-color-hha-heavy.caffemodel",
         "fcn32s-vgg16", NYUD_CLASSES, NYUD_HHA, suffix="hha", other_suffixes=("color",)),
    *(
        _fcn(f"siftflow-fcn{stride}s", f"siftflow-fcn{stride}s-heavy.caffemodel",
             f"fcn{stride}s-siftflow-vgg16", SIFTFLOW_CLASSES, _SIFTFLOW)
        for stride in (32, 16, 8)
    ),
    *(
        _fcn(f"siftflow-fcn{stride}s-{head}", f"siftflow-fcn{stride}s-heavy.caffemodel",
             f"fcn{stride}s-vgg16", classes, _SIFTFLOW, suffix=suffix, other_suffixes=others)
        for stride in (32, 16, 8)
        for head, classes, suffix, others in _SIFTFLOW_HEADS
    ),
    *(
        _fcn(f"pascalcontext-fcn{stride}s", f"pascalcontext-fcn{stride}s-heavy.caffemodel",
             f"fcn{stride}s-vgg16", PASCALCONTEXT_CLASSES, caffe_convention(CONTEXT_MEAN_BGR))
        for stride in (32, 16, 8)
    ),
    Published("vgg16-ilsvrc", "VGG_ILSVRC_16_layers.caffemodel",
              "http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/"
              "VGG_ILSVRC_16_layers.caffemodel",
              CLASSIFIER, VGG16, None, None, caffe_convention(VGG16_ILSVRC_MEAN),
              sha1="9363e1f6d65f7dba68c4f27a1e62105cdf6c4e24"),
    Published("caffenet", "bvlc_reference_caffenet.caffemodel",
              _BERKELEY + "bvlc_reference_caffenet.caffemodel", CLASSIFIER, AlexNet, None, None,
              _ILSVRC_MEAN_IMAGE, sha1="4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46"),
    Published("alexnet", "bvlc_alexnet.caffemodel", _BERKELEY + "bvlc_alexnet.caffemodel",
              CLASSIFIER, AlexNet, None, None, _ILSVRC_MEAN_IMAGE,
              sha1="9116a64c0fbe4459d18f4bb6b56d647b63920377"),
    Published("googlenet", "bvlc_googlenet.caffemodel", _BERKELEY + "bvlc_googlenet.caffemodel",
              CLASSIFIER, GoogLeNet, None, None, caffe_convention(GOOGLENET_MEAN),
              sha1="405fc5acd08a3bb12de8ee5e23a96bec22f08204"),
    Published("torchvision-vgg16", "vgg16-397923af.pth",
              "https://download.pytorch.org/models/vgg16-397923af.pth", CLASSIFIER, VGG16, None,
              None, TORCHVISION_IMAGENET),
)  # fmt: skip


def find_published(name: str | None, filename: str, model: str | None = None) -> Published | None:
    """The entry named ``name``, else the one whose file name is ``filename``, else None.

    A file with several entries (a two-net file: the whole net, and each of its nets alone)
    gives the entry for ``model`` when exactly one has it.

    Raises:
        FcnsegError: ``name`` is not an entry, or ``filename`` is a two-net file, which needs
            ``name`` to say which net.
    """
    if name is not None:
        if name not in PUBLISHED:
            raise FcnsegError(f"unknown published weights '{name}'; known: {', '.join(PUBLISHED)}")
        return PUBLISHED[name]
    matches = [entry for entry in PUBLISHED.values() if entry.filename == filename]
    if len(matches) > 1:
        for_model = [entry for entry in matches if entry.model == model]
        matches = for_model if len(for_model) == 1 else [e for e in matches if e.suffix]
    if len(matches) > 1:
        raise FcnsegError(
            f"{filename} holds two nets; name one with source: "
            f"{' or '.join(entry.name for entry in matches)}"
        )
    return matches[0] if matches else None


def identify_published(
    sha1: str, blobs: dict[str, list], model: str, model_backbone: type[Classifier]
) -> Published | None:
    """The published entry a renamed ``.caffemodel`` is, by its content: its SHA-1 where a
    public text states the entry's, else its layer set. A file's name says nothing once it
    is renamed; its bytes and layers still do.

    By layers: an ILSVRC classifier (``fc8`` of 1000 scores, no ``score_fr``) of the model's
    backbone, or an FCN of ``model`` whose ``score_fr`` scores the entry's classes (and whose
    fixed skip scales are there exactly when the entry is the at-once net), where exactly one
    entry fits; None where none or several do (CaffeNet and AlexNet share their layers).
    """
    for entry in PUBLISHED.values():
        if entry.sha1 is not None and entry.sha1 == sha1 and entry.model in (None, model):
            return entry
    candidates = [e for e in PUBLISHED.values() if e.filename.endswith(".caffemodel")]
    if "score_fr" not in blobs and "fc8" in blobs:
        if _outputs(blobs["fc8"]) != 1000:
            return None
        fits = [e for e in candidates if e.kind == CLASSIFIER and e.backbone is model_backbone]
    elif "score_fr" in blobs:
        classes = _outputs(blobs["score_fr"])
        atonce = "scale_pool4" in blobs
        fits = [
            e
            for e in candidates
            if e.kind == FCN
            and e.model == model
            and not e.suffix
            and e.num_classes == classes
            and ("atonce" in e.name) == atonce
        ]
    else:
        return None
    return fits[0] if len(fits) == 1 else None


def _outputs(layer_blobs: list) -> int:
    # the bias has one value per output, whatever shape the file gives it (legacy files: 4-D)
    return int(layer_blobs[1].size) if len(layer_blobs) > 1 else int(layer_blobs[0].shape[0])
