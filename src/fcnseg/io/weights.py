"""fcnseg's one weights format and its one loader.

Every weight file fcnseg writes (a training checkpoint, a converted ``.caffemodel`` or
``.pth``, a shipped model) is a safetensors state dict under Caffe layer names whose header
holds one metadata record, :class:`ModelMeta`, as JSON under the key ``fcnseg``: the model
and its build options, classes, palette, input convention, where the weights came from, and
the training iteration and metrics where there are any. Safetensors holds tensors only and
loads without unpickling, so a weight file cannot run code.

:func:`load_model` is the only way fcnseg rebuilds a model from weights: the CLI, evaluation,
export and training's ``--init`` all use it. It also reads the two formats of fcnseg 0.1:
``fcnseg-weights/1`` (converted files, metadata inside) and ``fcnseg-checkpoint/1`` (training
checkpoints and the first shipped model, metadata in a ``.json`` beside the weights).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from fcnseg.convention import InputConvention
from fcnseg.errors import FcnsegError
from fcnseg.io.atomic import atomic_write
from fcnseg.models import build_model, list_models

METADATA_KEY = "fcnseg"
FORMAT = "fcnseg/2"
LEGACY_WEIGHTS = "fcnseg-weights/1"
LEGACY_CHECKPOINT = "fcnseg-checkpoint/1"
# What the weights are: trained by fcnseg, a converted segmentation net, or an FCN cast from
# an ImageNet classifier (score layers zero, upsampling bilinear; section 4.1).
INITS = ("trained", "fcn", "classifier")
# A header's JSON is read whole; a real record is a few kilobytes.
MAX_METADATA_BYTES = 1 << 20
# The whole safetensors header (every tensor's name, dtype, shape and offsets, and the
# record): a VGG16 FCN's is about 10 kB. Checked before safetensors parses it.
MAX_HEADER_BYTES = 16 << 20
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# A training run saves what resuming needs besides the weights (optimiser, step) in
# ``<checkpoint>.state.pt`` beside ``<checkpoint>.safetensors`` (fcnseg.train.checkpoint).
STATE_SUFFIX = ".state.pt"


@dataclass(frozen=True)
class WeightsSource:
    """The file a set of weights was converted from.

    Attributes:
        file: its name (no directory, which would say nothing on another machine).
        sha256: hex digest of its bytes.
        size: bytes.
        layout: ``"caffemodel"``, ``"torchvision"``, ``"pytorch-fcn"`` or ``"caffe-named"``.
        published: the entry of :data:`fcnseg.io.published.PUBLISHED` it was read as, or None.
    """

    file: str
    sha256: str
    size: int
    layout: str
    published: str | None = None


@dataclass(frozen=True)
class ModelMeta:
    """What a weight file says about its tensors: the one metadata record.

    Attributes:
        model: the model name (:func:`fcnseg.list_models`).
        build: the keyword arguments that rebuild it with ``build_model(model, **build)``:
            ``num_classes``, ``geometry`` and backbone options such as ``width``.
        classes: class names of the first head, index order.
        palette: one RGB colour per class.
        input_convention: the input the weights expect (:mod:`fcnseg.convention`).
        init: ``"trained"`` (by fcnseg), ``"fcn"`` (a converted segmentation net) or
            ``"classifier"`` (an FCN cast from an ImageNet classifier, not yet trained).
        source: the file the weights were converted from, with its sha256; None if trained.
        dataset: the dataset the weights were trained on, where known.
        ignore_index: the void label of that dataset.
        head_classes: class names of the heads after the first (SIFT Flow's ``geo``).
        iteration: training steps done, for a checkpoint.
        metrics: the held-out metrics recorded with a checkpoint (``fcnseg eval``'s record).
        config: the training configuration, for a checkpoint.
        notes: caveats, one sentence each.
        git: the commit of the code that wrote the file, where known.
        saved: when the file was written (ISO 8601, UTC).
    """

    model: str
    build: Mapping[str, Any]
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    input_convention: InputConvention
    init: str = "trained"
    source: WeightsSource | None = None
    dataset: str | None = None
    ignore_index: int = 255
    head_classes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    iteration: int | None = None
    metrics: Mapping[str, Any] | None = None
    config: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()
    git: str | None = None
    saved: str | None = None

    def __post_init__(self) -> None:
        if self.model not in list_models():
            raise FcnsegError(f"unknown model '{self.model}'")
        if self.init not in INITS:
            raise FcnsegError(f"init {self.init!r}, expected one of {INITS}")
        count = self.build.get("num_classes")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise FcnsegError(f"build num_classes {count!r}, expected a positive integer")
        if len(self.classes) != count:
            raise FcnsegError(f"{len(self.classes)} class names for {count} classes")
        if len(self.palette) != count:
            raise FcnsegError(f"{len(self.palette)} palette colours for {count} classes")

    @property
    def num_classes(self) -> int:
        """Classes of the first head."""
        return int(self.build["num_classes"])

    def replace(self, **changes: Any) -> ModelMeta:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; :meth:`from_dict` reads it back."""
        return {
            "format": FORMAT,
            "model": self.model,
            "build": dict(self.build),
            "classes": list(self.classes),
            "palette": [list(colour) for colour in self.palette],
            "input_convention": self.input_convention.to_dict(),
            "init": self.init,
            "source": None if self.source is None else dataclasses.asdict(self.source),
            "dataset": self.dataset,
            "ignore_index": self.ignore_index,
            "head_classes": {k: list(v) for k, v in self.head_classes.items()},
            "iteration": self.iteration,
            "metrics": None if self.metrics is None else dict(self.metrics),
            "config": None if self.config is None else dict(self.config),
            "notes": list(self.notes),
            "git": self.git,
            "saved": self.saved,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "metadata") -> ModelMeta:
        """Reads :meth:`to_dict`'s output, or either format of fcnseg 0.1 (see the module).

        Raises:
            FcnsegError: anything malformed, naming ``where``.
        """
        if not isinstance(data, Mapping):
            raise FcnsegError(f"{where}: fcnseg metadata is {type(data).__name__}, not an object")
        try:
            kind = data.get("format")
            if kind == FORMAT:
                return _from_current(data)
            if kind == LEGACY_WEIGHTS:
                return _from_legacy_weights(data)
            if kind == LEGACY_CHECKPOINT:
                return _from_legacy_checkpoint(data)
            raise FcnsegError(
                f"format {kind!r}, expected {FORMAT!r} (or {LEGACY_WEIGHTS!r}, "
                f"{LEGACY_CHECKPOINT!r})"
            )
        except FcnsegError as error:
            raise FcnsegError(f"{where}: {error}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise FcnsegError(f"{where}: malformed fcnseg metadata ({error!r})") from None


def _from_current(data: Mapping[str, Any]) -> ModelMeta:
    source = data["source"]
    return ModelMeta(
        model=_typed(data["model"], str, "model"),
        build=dict(_typed(data["build"], dict, "build")),
        classes=tuple(
            _typed(c, str, "class name") for c in _typed(data["classes"], list, "classes")
        ),
        palette=_palette(data["palette"]),
        input_convention=InputConvention.from_dict(data["input_convention"]),
        init=_typed(data["init"], str, "init"),
        source=None if source is None else _source(source),
        dataset=data["dataset"],
        ignore_index=_typed(data["ignore_index"], int, "ignore_index"),
        head_classes={
            str(k): tuple(str(c) for c in v)
            for k, v in _typed(data["head_classes"], dict, "head_classes").items()
        },
        iteration=data["iteration"],
        metrics=data["metrics"],
        config=data["config"],
        notes=tuple(str(n) for n in data["notes"]),
        git=data.get("git"),
        saved=data.get("saved"),
    )


def _from_legacy_weights(data: Mapping[str, Any]) -> ModelMeta:
    # fcnseg-weights/1: written by fcnseg convert 0.1; no palette, class names optional.
    from fcnseg.data.palettes import bitmap_palette

    count = _typed(data["num_classes"], int, "num_classes")
    classes = data["classes"]
    return ModelMeta(
        model=_typed(data["model"], str, "model"),
        build={"num_classes": count, "geometry": "caffe", **data["model_options"]},
        classes=tuple(classes)
        if classes is not None
        else tuple(f"class {i}" for i in range(count)),
        palette=bitmap_palette(count),
        input_convention=InputConvention.from_dict(data["input"]),
        init=_typed(data["init"], str, "init"),
        source=_source(data["source"]),
        notes=tuple(str(n) for n in data["notes"]),
    )


def _from_legacy_checkpoint(data: Mapping[str, Any]) -> ModelMeta:
    # fcnseg-checkpoint/1: a training checkpoint's .json of fcnseg 0.1 (the mean was stored
    # twice, as input_convention and mean_bgr; the convention is the one that counts).
    source = data.get("source")
    notes = (source,) if isinstance(source, str) else ()
    return ModelMeta(
        model=_typed(data["model"], str, "model"),
        build=dict(_typed(data["build"], dict, "build")),
        classes=tuple(str(c) for c in data["classes"]),
        palette=_palette(data["palette"]),
        input_convention=InputConvention.from_dict(data["input_convention"]),
        init="trained",
        dataset=data.get("dataset"),
        ignore_index=int(data.get("ignore_index", 255)),
        iteration=data.get("iteration"),
        metrics=data.get("metrics"),
        config=data.get("config"),
        notes=notes,
        git=data.get("git"),
        saved=data.get("saved"),
    )


def _source(data: Mapping[str, Any]) -> WeightsSource:
    return WeightsSource(
        file=_typed(data["file"], str, "source.file"),
        sha256=_typed(data["sha256"], str, "source.sha256"),
        size=_typed(data["size"], int, "source.size"),
        layout=_typed(data["layout"], str, "source.layout"),
        published=data["published"],
    )


def _palette(data: Any) -> tuple[tuple[int, int, int], ...]:
    colours = []
    for colour in _typed(data, list, "palette"):
        if len(colour) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in colour):
            raise ValueError(f"palette colour {colour!r}, expected three integers 0-255")
        colours.append((colour[0], colour[1], colour[2]))
    return tuple(colours)


def _typed(value: Any, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name} is {type(value).__name__}, expected {kind.__name__}")
    return value


def save_weights(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    meta: ModelMeta,
) -> Path:
    """Writes ``state_dict`` with ``meta`` in its header, atomically (see
    :func:`fcnseg.io.atomic.atomic_write`); the commit and the time are recorded.

    Raises:
        FcnsegError: the file cannot be written.
    """
    path = Path(path)
    tensors = {k: t.detach().cpu().contiguous() for k, t in state_dict.items()}
    meta = meta.replace(git=meta.git or git_hash(), saved=_now())
    header = {METADATA_KEY: json.dumps(meta.to_dict())}
    try:
        atomic_write(path, safetensors.torch.save(tensors, metadata=header))
    except OSError as error:
        raise FcnsegError(f"{path}: cannot write: {error.strerror or error}") from None
    return path


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    """The state dict and metadata of a weight file, in the current or a 0.1 format.

    A hostile file costs little: the header's size is checked before it is parsed, the
    record is read and checked before any tensor, and safetensors refuses a tensor whose
    declared shape and type do not match the bytes the file holds for it, so the tensors
    read never take more memory than the file's size. Nothing in the file is executed.

    Raises:
        FcnsegError: the file is missing, not safetensors, or has no valid fcnseg metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FcnsegError(f"{path}: no such file")
    _check_header_size(path)
    try:
        with safetensors.safe_open(path, framework="pt") as handle:
            meta = _record(path, handle.metadata() or {})
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except FcnsegError:
        raise
    except Exception as error:  # noqa: BLE001 - safetensors reports a bad file in several ways
        raise FcnsegError(f"{path}: not a readable safetensors file ({error})") from None
    return state, meta


def _check_header_size(path: Path) -> None:
    try:
        with open(path, "rb") as file:
            start = file.read(8)
    except OSError as error:
        raise FcnsegError(f"{path}: cannot read: {error.strerror or error}") from None
    if len(start) == 8 and int.from_bytes(start, "little") > MAX_HEADER_BYTES:
        raise FcnsegError(
            f"{path}: not a readable safetensors file (a header of "
            f"{int.from_bytes(start, 'little')} bytes declared; fcnseg's are far below "
            f"{MAX_HEADER_BYTES})"
        )


def _record(path: Path, header: Mapping[str, str]) -> ModelMeta:
    """The fcnseg record of a weight file's safetensors header (``header``)."""
    if METADATA_KEY in header:
        text = header[METADATA_KEY]
    elif header.get("format") == LEGACY_CHECKPOINT:
        text = _legacy_sidecar(path, header)
    else:
        raise FcnsegError(f"{path}: no fcnseg metadata; not a file fcnseg wrote")
    if len(text) > MAX_METADATA_BYTES:
        raise FcnsegError(f"{path}: fcnseg metadata of {len(text)} bytes; a real one is small")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise FcnsegError(f"{path}: fcnseg metadata is not JSON ({error})") from None
    return ModelMeta.from_dict(data, str(path))


def _legacy_sidecar(path: Path, header: Mapping[str, str]) -> str:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise FcnsegError(f"{sidecar}: checkpoint metadata not found")
    if sidecar.stat().st_size > MAX_METADATA_BYTES:
        raise FcnsegError(f"{sidecar}: {sidecar.stat().st_size} bytes; a real one is small")
    try:
        text = sidecar.read_text()
        saved = json.loads(text).get("iteration")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
        raise FcnsegError(f"{sidecar}: cannot read checkpoint metadata ({error})") from None
    if "iteration" in header and int(header["iteration"]) != int(saved or 0):
        raise FcnsegError(
            f"{path}: weights of iteration {header['iteration']} but {sidecar.name} describes "
            f"iteration {saved} (an interrupted save?)"
        )
    return text


def load_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: Path) -> None:
    """Loads a whole state dict strictly, naming ``source`` and the first misfits if it does
    not fit.

    Raises:
        FcnsegError: missing or unexpected keys, or a tensor of another shape.
    """
    check_fit(model.state_dict(), state, source)
    model.load_state_dict(state)


def check_fit(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: Path
) -> None:
    """Checks that ``state`` has the names, shapes and types of ``expected`` (a model's state
    dict, on any device, the meta device included).

    Raises:
        FcnsegError: naming ``source`` and the first misfits.
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    types = [k for k in expected if k in state and state[k].dtype != expected[k].dtype]
    problems = []
    if missing:
        problems.append(f"missing {missing[:3]}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:3]}")
    if wrong:
        name = wrong[0]
        problems.append(
            f"{name} is {tuple(state[name].shape)}, the model's {tuple(expected[name].shape)}"
        )
    if types:
        name = types[0]
        problems.append(f"{name} is {state[name].dtype}, the model's {expected[name].dtype}")
    if problems:
        raise FcnsegError(f"{source}: weights do not fit the model ({'; '.join(problems)})")


def list_pretrained() -> list[str]:
    """Names of the models shipped with fcnseg (``load_model`` takes them)."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(path.stem for path in WEIGHTS_DIR.glob("*.safetensors"))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, as hex (what ``sha256sum`` prints), read 1 MiB at a
    time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(spec: str | os.PathLike[str]) -> Path:
    """The weight file ``spec`` names: a ``.safetensors`` file (or a 0.1 checkpoint's
    ``.json``), a checkpoint stem (``runs/voc/best``), a run folder (its ``best``, else its
    ``last``; a staged run's folder: its last stage's, ``stage3-fcn8s-vgg16``), or a shipped
    model's name.

    Raises:
        FcnsegError: ``spec`` is none of these.
    """
    path = Path(spec)
    if path.is_dir():
        for stem in ("best", "last"):
            if (path / f"{stem}.safetensors").is_file():
                return path / f"{stem}.safetensors"
        stages = [
            (int(match.group(1)), folder)
            for folder in path.glob("stage*")
            if folder.is_dir() and (match := re.match(r"stage(\d+)-", folder.name))
        ]
        if stages:  # a staged run (fcnseg.train.fit_staged): its finest net
            return resolve(max(stages)[1])
        raise FcnsegError(f"{path}: folder holds no best or last checkpoint")
    if path.suffix in (".safetensors", ".json") and path.is_file():
        return path.with_suffix(".safetensors")
    if path.with_name(path.name + ".safetensors").is_file():
        return path.with_name(path.name + ".safetensors")
    if str(spec) in list_pretrained():
        return WEIGHTS_DIR / f"{spec}.safetensors"
    if path.suffix.lower() == ".onnx" and path.is_file():
        raise FcnsegError(
            f"{spec}: an ONNX export, which only fcnseg predict runs; give the .safetensors "
            "weights it was exported from"
        )
    if path.name.endswith(STATE_SUFFIX) and path.is_file():
        # a run's training state (optimizer, step), saved beside its weights
        weights = path.with_name(path.name[: -len(STATE_SUFFIX)] + ".safetensors")
        raise FcnsegError(
            f"{spec}: a run's training state (optimizer and step), not a model; give its "
            f"weights, {weights}, or the run folder"
        )
    if path.suffix.lower() in (".pt", ".ts") and path.is_file():
        raise FcnsegError(
            f"{spec}: a TorchScript or PyTorch file, which fcnseg does not run (TorchScript "
            "exports are for torch.jit.load); give the weights it was exported from (a "
            ".safetensors file, a run folder or a shipped model's name), or convert a "
            "PyTorch checkpoint with fcnseg convert"
        )
    if path.is_file():
        raise FcnsegError(
            f"{spec}: not fcnseg weights (a .safetensors file, a checkpoint or a run folder; "
            "fcnseg convert reads .caffemodel and .pth files)"
        )
    known = ", ".join(list_pretrained()) or "none shipped"
    raise FcnsegError(
        f"{spec}: no such weight file, checkpoint or shipped model (shipped: {known})"
    )


def load_model(
    spec: str | os.PathLike[str], *, device: torch.device | str | None = None
) -> nn.Module:
    """The model a weight file describes, built, loaded strictly, in eval mode.

    The model's metadata record is at ``model.meta`` (:class:`ModelMeta`): classes, palette,
    input convention, source, and a checkpoint's iteration and metrics.

    Args:
        spec: a shipped model's name (:func:`list_pretrained`), a ``.safetensors`` file, a
            checkpoint stem (``runs/voc/best``) or a run folder (its ``best``, else ``last``).
        device: where to put the model; the CPU when None.

    Raises:
        FcnsegError: no such file or model, a file fcnseg cannot read, or weights that do
            not fit the model their metadata names.
    """
    path = resolve(spec)
    state, meta = read_weights(path)
    # The record says what to build; it is checked against the tensors the file holds on
    # the meta device first, so that a record declaring a huge net allocates nothing.
    check_fit(_skeleton(meta, path).state_dict(), state, path)
    model = build_model(meta.model, **meta.build)
    load_state_dict(model, state, path)
    model.meta = meta
    model.eval()
    if device is not None:
        model.to(device)
    return model


def _skeleton(meta: ModelMeta, path: Path) -> nn.Module:
    """The model ``meta`` describes, on the meta device (shapes and types, no memory)."""
    try:
        with torch.device("meta"):
            return build_model(meta.model, **meta.build)
    except FcnsegError as error:
        raise FcnsegError(f"{path}: {error}") from None
    except Exception as error:  # noqa: BLE001 - a hostile record can break a constructor anyhow
        raise FcnsegError(f"{path}: its metadata builds no model ({error!r})") from None


@functools.cache
def git_hash() -> str | None:
    """The commit of the code that is running, or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
