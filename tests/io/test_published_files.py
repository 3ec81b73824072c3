"""The real published files, where a folder of them is given in FCNSEG_CAFFEMODEL_DIR.

Nothing downloads: without the variable (or without a file) each test is skipped and says why.
No public text states SHA-256s of these files; OpenCV's download_models.py and the BVLC model
zoo state SHA-1s, which is what is checked. The SHA-256 is computed and recorded in the
converted file's metadata.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fcnseg.io import PUBLISHED, Published, convert, read_weights
from fcnseg.models import build_model

DIRECTORY_VARIABLE = "FCNSEG_CAFFEMODEL_DIR"


def _published_file(filename: str) -> Path:
    directory = os.environ.get(DIRECTORY_VARIABLE)
    if not directory:
        pytest.skip(
            f"{DIRECTORY_VARIABLE} is not set (a folder of the published .caffemodel files); "
            "runs on any machine where it names one"
        )
    path = Path(directory) / filename
    if not path.is_file():
        pytest.skip(f"{path} is absent from {DIRECTORY_VARIABLE}; runs once it is there")
    return path


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize(
    "entry", [e for e in PUBLISHED.values() if e.sha1 is not None], ids=lambda e: e.name
)
def test_published_file_has_its_published_sha1(entry: Published) -> None:
    assert _sha1(_published_file(entry.filename)) == entry.sha1


@pytest.mark.slow
def test_fcn8s_heavy_pascal_converts_and_loads(tmp_path: Path) -> None:
    path = _published_file("fcn8s-heavy-pascal.caffemodel")
    dst = tmp_path / "voc-fcn8s.safetensors"

    state, metadata = convert(path, "fcn8s-vgg16", 21, dst)

    assert metadata.source.published == "voc-fcn8s"
    assert not any("SHA-1" in note for note in metadata.notes), metadata.notes
    build_model("fcn8s-vgg16", num_classes=21).load_state_dict(state, strict=True)
    loaded, loaded_metadata = read_weights(dst)
    # the file adds when it was saved (and the commit); the rest is the record convert returned
    assert loaded_metadata.replace(git=metadata.git, saved=metadata.saved) == metadata
    assert loaded.keys() == state.keys()
    assert len(metadata.source.sha256) == 64
