"""TrainConfig refuses a value outside its field's range at once, naming the field.

A NaN passes a check written as ``if value <= 0: raise`` (every comparison with NaN is
false), and torch's own checks come late (Adam's beta at the first step, with a traceback)
or never (a NaN learning rate trains to NaN weights): each range here is checked with
NaN, infinities and the values on either side of its bounds.
"""

from __future__ import annotations

import math

import pytest

from fcnseg.errors import ConfigError, FcnsegError
from fcnseg.train import TrainConfig

NAN, INF = math.nan, math.inf

REFUSED = [
    ("lr", 0.0),
    ("lr", -1e-3),
    ("lr", NAN),
    ("lr", INF),
    ("momentum", 1.0),
    ("momentum", 1.5),
    ("momentum", -0.1),
    ("momentum", NAN),
    ("weight_decay", -1e-4),
    ("weight_decay", NAN),
    ("weight_decay", INF),
    ("poly_power", -0.9),
    ("poly_power", NAN),
    ("poly_power", INF),
    ("median_frequency_power", 0.0),
    ("median_frequency_power", NAN),
    ("median_frequency_power", INF),
    ("loss_sampling", 0.0),
    ("loss_sampling", 1.5),
    ("loss_sampling", NAN),
    ("ohem_thresh", 0.0),
    ("ohem_thresh", 1.01),
    ("ohem_thresh", NAN),
    ("ohem_min_kept", -1),
    ("colour_jitter", 1.0),
    ("colour_jitter", -0.1),
    ("colour_jitter", NAN),
    ("crop", 0),
    ("batch_size", 0),
    ("iter_size", 0),
    ("max_iter", 0),
    ("eval_every", -1),
    ("jitter", -1),
    ("workers", -1),
    ("scale", [2.0, 1.0]),
    ("scale", [0.0, 1.0]),
    ("scale", [NAN, 2.0]),
    ("scale", [0.5, INF]),
    ("scale", [0.5]),
]


@pytest.mark.parametrize(("field", "value"), REFUSED, ids=lambda v: str(v))
def test_a_value_outside_its_range_is_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as refused:
        TrainConfig(**{field: value})
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field} must ")
    assert str(refused.value) == f"{field} {refused.value.problem}"
    assert isinstance(refused.value, FcnsegError)  # the commands print it as one line


ACCEPTED = [
    ("lr", 1e-14),  # the reference's FCN-8s rate
    ("momentum", 0.0),
    ("momentum", 0.99),  # the reference's
    ("weight_decay", 0.0),
    ("poly_power", 0.0),  # a constant rate
    ("median_frequency_power", 0.25),
    ("loss_sampling", 1.0),
    ("ohem_thresh", 1.0),
    ("ohem_min_kept", 0),
    ("colour_jitter", 0.0),
    ("crop", 1),
    ("eval_every", 0),
    ("scale", [1.0, 1.0]),
]


@pytest.mark.parametrize(("field", "value"), ACCEPTED, ids=lambda v: str(v))
def test_the_bounds_themselves_are_accepted(field: str, value: object) -> None:
    assert getattr(TrainConfig(**{field: value}), field) == value


WRONG_TYPES = [
    ("lr", "0.1"),
    ("lr", None),
    ("batch_size", "4"),
    ("batch_size", 2.5),
    ("max_iter", True),
    ("crop", 1.5),
    ("seed", "x"),
    ("momentum", [0.9]),
    ("scale", 1.5),
    ("scale", "ab"),
    ("class_weights", "median"),
    ("class_weights", [1.0, "2"]),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES, ids=lambda v: repr(v))
def test_a_value_of_the_wrong_type_is_refused_naming_the_field(field: str, value: object) -> None:
    # a hand-edited config.json reaches TrainConfig as JSON values: "0.1" once failed in a
    # comparison with a TypeError, 1.5 as a scale in float() over a float
    with pytest.raises(ConfigError) as refused:
        TrainConfig(**{field: value})
    assert refused.value.field == field


@pytest.mark.parametrize(
    "weights", [[0.0, 0.0, 0.0], [-1.0, 1.0, 1.0], [NAN, 1.0, 1.0], [INF, 1.0, 1.0], [1e39, 1.0]]
)
def test_class_weights_that_would_train_nothing_or_nonsense_are_refused(
    weights: list[float],
) -> None:
    # all zero: a loss of 0 at every step, which trained without a word; 1e39 is inf in the
    # float32 loss
    with pytest.raises(ConfigError, match="class_weights must be finite float32 numbers"):
        TrainConfig(class_weights=weights)
    assert TrainConfig(class_weights=[0.0, 2.0, 1.0]).class_weights == [0.0, 2.0, 1.0]


def test_loss_sampling_that_would_never_end_a_step_is_refused() -> None:
    # p = 1e-300 once meant 1e300 forward passes per step: a run that hung without a word
    with pytest.raises(ConfigError, match=r"means 1e\+300 forward passes per step"):
        TrainConfig(loss_sampling=1e-300)
    with pytest.raises(ConfigError, match="forward passes per step"):
        TrainConfig(loss_sampling=0.5, iter_size=5001)
    with pytest.raises(ConfigError, match=r"iter_size means 10001 forward passes per step"):
        TrainConfig(iter_size=10001)
    assert TrainConfig(iter_size=10000).accumulation == 10000
    assert TrainConfig(loss_sampling=0.25, iter_size=20).accumulation == 80  # the paper's p
