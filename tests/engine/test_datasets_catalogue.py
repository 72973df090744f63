"""The catalogue: every dataset loads with the right shapes and classes; options are checked."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from workbench.cli import main
from workbench.engine.datasets import (
    dataset_names,
    describe_dataset,
    load_splits,
)
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DATASET_NAMES, DataSpec

POINT_SETS = ("moons", "circles", "xor", "spirals", "blobs")


def _tensors(dataset: object) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(dataset, TensorDataset)
    x, y = dataset.tensors
    return x, y


def test_catalogue_names_match_the_experiment_file_choices() -> None:
    assert dataset_names() == DATASET_NAMES


def test_toy_is_exactly_the_classic_intro_data() -> None:
    splits = load_splits(DataSpec(name="toy", val_split=0.5), seed=123)
    x_train, y_train = _tensors(splits.train)
    x_test, y_test = _tensors(splits.val)
    expected_train = [[-1.2, 3.1], [-0.9, 2.9], [-0.5, 2.6], [2.3, -1.1], [2.7, -1.5]]
    assert torch.equal(x_train, torch.tensor(expected_train, dtype=torch.float32))
    assert torch.equal(y_train, torch.tensor([0, 0, 0, 1, 1]))
    assert torch.equal(x_test, torch.tensor([[-0.8, 2.8], [2.6, -1.6]], dtype=torch.float32))
    assert torch.equal(y_test, torch.tensor([0, 1]))
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    info = splits.info
    assert (info.input_shape, info.num_classes, info.train_size, info.val_size) == ((2,), 2, 5, 2)
    assert info.kind == "points2d"


@pytest.mark.parametrize("name", POINT_SETS)
def test_point_sets_have_2d_float_points_and_every_class(name: str) -> None:
    spec = DataSpec(name=name, val_split=0.25, options={"n_samples": 60})
    splits = load_splits(spec, seed=0)
    x_train, y_train = _tensors(splits.train)
    x_val, y_val = _tensors(splits.val)
    assert x_train.shape == (45, 2) and x_val.shape == (15, 2)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    classes = splits.info.num_classes
    assert set(torch.cat([y_train, y_val]).tolist()) == set(range(classes))
    assert splits.info.input_shape == (2,)
    assert (splits.info.train_size, splits.info.val_size) == (45, 15)


@pytest.mark.parametrize("name", POINT_SETS)
def test_point_sets_repeat_for_a_seed_and_change_with_it(name: str) -> None:
    def points(data_seed: int) -> torch.Tensor:
        spec = DataSpec(name=name, val_split=0.0, options={"n_samples": 40, "seed": data_seed})
        return _tensors(load_splits(spec, seed=0).train)[0]

    assert torch.equal(points(3), points(3))
    assert not torch.equal(points(3), points(4))


def test_split_depends_on_the_run_seed_not_the_data() -> None:
    spec = DataSpec(name="moons", val_split=0.2, options={"n_samples": 50})
    val_a = _tensors(load_splits(spec, seed=1).val)[0]
    val_b = _tensors(load_splits(spec, seed=1).val)[0]
    val_c = _tensors(load_splits(spec, seed=2).val)[0]
    assert torch.equal(val_a, val_b)
    assert not torch.equal(val_a, val_c)
    whole = torch.cat([_tensors(load_splits(spec, seed=2).train)[0], val_c])
    assert whole.shape == (50, 2)


def test_classes_option_sets_the_number_of_classes() -> None:
    spec = DataSpec(name="spirals", options={"n_samples": 50, "classes": 5})
    info = describe_dataset(spec)
    assert info.num_classes == 5
    assert info.class_names == ("arm 0", "arm 1", "arm 2", "arm 3", "arm 4")
    assert load_splits(spec, seed=0).info == info


def test_xor_labels_follow_the_quadrants_without_noise() -> None:
    spec = DataSpec(name="xor", val_split=0.0, options={"n_samples": 200, "noise": 0.0})
    x, y = _tensors(load_splits(spec, seed=0).train)
    assert torch.equal(y, (x[:, 0] * x[:, 1] < 0).long())


def test_digits_are_8x8_images_scaled_to_unit_range() -> None:
    splits = load_splits(DataSpec(name="digits", val_split=0.2), seed=0)
    x, y = _tensors(splits.train)
    assert x.shape[1:] == (1, 8, 8)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert splits.info.class_names == tuple(str(d) for d in range(10))
    assert splits.info.train_size + splits.info.val_size == 1797
    assert splits.info.val_size == 359
    assert set(y.tolist()) == set(range(10))


def test_describe_matches_what_loading_reports() -> None:
    for name in ("toy", *POINT_SETS, "digits"):
        spec = DataSpec(name=name, options={} if name in ("toy", "digits") else {"n_samples": 30})
        assert describe_dataset(spec) == load_splits(spec, seed=0).info, name


def test_mnist_is_described_without_its_files(tmp_path: object) -> None:
    info = describe_dataset(DataSpec(name="mnist", root=str(tmp_path)))
    assert info.input_shape == (1, 28, 28)
    assert info.class_names == tuple(str(d) for d in range(10))
    assert (info.train_size, info.val_size) == (60_000, 10_000)
    cifar = describe_dataset(
        DataSpec(name="cifar10", root=str(tmp_path), options={"train_samples": 500})
    )
    assert cifar.input_shape == (3, 32, 32) and cifar.train_size == 500
    assert cifar.class_names[0] == "airplane"


def test_unknown_option_names_the_key_and_the_allowed_ones() -> None:
    spec = DataSpec(name="moons", options={"nosie": 0.2})
    with pytest.raises(DatasetError) as caught:
        load_splits(spec, seed=0)
    message = str(caught.value)
    assert "data.options.nosie" in message
    assert "did you mean 'noise'" in message
    assert "allowed: n_samples, noise, seed" in message


def test_option_on_a_dataset_without_options_is_refused() -> None:
    with pytest.raises(DatasetError, match=r"data\.options\.noise: dataset 'toy' takes no options"):
        describe_dataset(DataSpec(name="toy", options={"noise": 0.1}))


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"n_samples": "many"}, "data.options.n_samples: 'many' is not a whole number"),
        ({"n_samples": 1}, "data.options.n_samples: 1 is out of range; use a value between 2"),
        ({"noise": -0.5}, "data.options.noise: -0.5 is out of range; use a value at least 0.0"),
        ({"noise": True}, "data.options.noise: True is not a number"),
        ({"n_samples": 3, "classes": 4}, "3 points cannot make 4 classes"),
    ],
)
def test_bad_option_values_are_explained(options: dict[str, object], expected: str) -> None:
    with pytest.raises(DatasetError) as caught:
        load_splits(DataSpec(name="blobs", options=options), seed=0)
    assert expected in str(caught.value)


def test_integer_noise_is_accepted_as_a_number() -> None:
    info = describe_dataset(DataSpec(name="blobs", options={"noise": 2, "n_samples": 10}))
    assert info.train_size == 8


def test_datasets_verb_lists_every_dataset(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    assert main(["datasets", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in DATASET_NAMES:
        assert f"\n{name} — " in out
    assert "input shape [1, 28, 28], 60,000 train / 10,000 validation samples" in out
    assert "classes (2): upper moon, lower moon" in out
    assert "options: n_samples = 500, noise = 0.1, seed = 0" in out
    assert out.count("offline: yes (bundled)") == 8  # text: Shakespeare's Sonnets
    assert f"offline: no (no files in {tmp_path}/MNIST/raw)" in out


def test_datasets_verb_explains_one_dataset_and_refuses_unknown_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["datasets", "spirals"]) == 0
    out = capsys.readouterr().out
    assert "classes = 3" in out and "number of classes" in out
    assert "moons" not in out
    assert main(["datasets", "mnsit"]) == 2
    assert "data.name: 'mnsit' is not a dataset" in capsys.readouterr().err
