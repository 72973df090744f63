"""CheckpointDocument without widgets: every edit verb, undo/redo, dirty state, open and save."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from workbench.controllers.checkpoint_loader import CheckpointLoader
from workbench.engine.checkpoints import Reconciliation, open_checkpoint
from workbench.engine.errors import WorkbenchError
from workbench.ui.checkpoint_document import (
    NO_CHECKPOINT,
    NO_MODEL_REASON,
    NO_PROVIDER_REASON,
    CheckpointDocument,
    ModelProvider,
)

KEYS = ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]


class Net(nn.Module):
    def __init__(self, first: str = "conv1") -> None:
        super().__init__()
        self.add_module(first, nn.Conv2d(1, 2, 3))
        self.fc = nn.Linear(8, 3)


@pytest.fixture
def net_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "net.pth"
    torch.save(Net().state_dict(), path)
    return path


@pytest.fixture
def documents(qtbot) -> Iterator[list[CheckpointDocument]]:  # type: ignore[no-untyped-def]
    made: list[CheckpointDocument] = []
    yield made
    for document in made:
        assert document.shutdown(10_000)
    assert not CheckpointLoader.running_threads()


@pytest.fixture
def make_document(documents):  # type: ignore[no-untyped-def]
    def make(path: Path | None = None, provider: ModelProvider | None = None) -> CheckpointDocument:
        document = CheckpointDocument(model_provider=provider)
        documents.append(document)
        if path is not None:
            document.load(open_checkpoint(path))
        return document

    return make


class Recorder:
    """Every signal of a document, as (name, args) in the order they came."""

    def __init__(self, document: CheckpointDocument) -> None:
        self.events: list[tuple[str, tuple[object, ...]]] = []
        for name in (
            "opened",
            "state_changed",
            "dirty_changed",
            "title_changed",
            "saved",
            "status_message",
            "error_changed",
            "refusal_changed",
            "activity_changed",
            "reconciled",
            "model_unavailable",
            "compare_started",
            "compared",
            "compare_failed",
            "diff_outdated",
        ):
            getattr(document, name).connect(
                lambda *args, name=name: self.events.append((name, args))
            )

    def args(self, name: str) -> list[tuple[object, ...]]:
        return [args for event, args in self.events if event == name]

    def count(self, name: str) -> int:
        return len(self.args(name))


def test_load_starts_clean_with_the_file_keys(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document()
    assert document.title == "Checkpoint editor" and not document.is_open
    recorder = Recorder(document)
    document.load(open_checkpoint(net_file))
    assert list(document.state_dict) == KEYS
    assert document.path == net_file and document.title == "net.pth"
    assert document.is_open and document.can_edit and not document.is_dirty
    assert recorder.count("opened") == 1 and recorder.args("title_changed")[-1] == ("net.pth",)
    assert recorder.args("status_message") == [("Opened net.pth: 4 keys, 47 parameters",)]


def test_rename_is_one_undo_step_with_dirty_and_title(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    recorder = Recorder(document)
    assert document.rename_substring("conv1", "stem")
    assert list(document.state_dict) == ["stem.weight", "stem.bias", "fc.weight", "fc.bias"]
    assert document.undo_stack.undoText() == "Rename 'conv1' → 'stem'"
    assert document.is_dirty and document.title == "net.pth*"
    assert recorder.args("dirty_changed") == [(True,)]
    assert recorder.args("title_changed") == [("net.pth*",)]
    assert recorder.count("state_changed") == 1
    assert recorder.args("status_message") == [("Rename 'conv1' → 'stem'. Ctrl+Z undoes it.",)]
    document.undo_stack.undo()
    assert list(document.state_dict) == KEYS and not document.is_dirty
    assert recorder.args("dirty_changed") == [(True,), (False,)]
    document.undo_stack.redo()
    assert next(iter(document.state_dict)) == "stem.weight" and document.is_dirty
    assert recorder.count("state_changed") == 3


def test_an_edit_never_changes_the_previous_state_in_place(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    before = document.state_dict
    weight = before["fc.weight"]
    assert document.cast("float16")
    assert document.state_dict["fc.weight"].dtype == torch.float16
    assert before["fc.weight"] is weight and weight.dtype == torch.float32
    document.undo_stack.undo()
    assert document.state_dict["fc.weight"] is weight


def test_regex_rename_and_its_refusal(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    recorder = Recorder(document)
    assert not document.rename_regex(r"^(conv1|fc)\.", "x.")
    message = recorder.args("error_changed")[-1][0]
    assert isinstance(message, str) and "rename refused" in message
    assert "'conv1.weight', 'fc.weight' would all become 'x.weight'" in message
    assert document.undo_stack.count() == 0 and not document.is_dirty
    assert document.rename_regex(r"^conv(\d)\.", r"block\1.")
    assert list(document.state_dict)[:2] == ["block1.weight", "block1.bias"]
    assert recorder.args("error_changed")[-1] == ("",)  # a good edit clears the message
    assert document.undo_stack.undoText() == r"Regex rename '^conv(\d)\.' → 'block\1.'"


def test_strip_and_add_prefix(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    assert document.add_prefix("model.")
    assert all(key.startswith("model.") for key in document.state_dict)
    assert document.strip_prefix("model.")
    assert list(document.state_dict) == KEYS
    assert [document.undo_stack.text(i) for i in range(2)] == [
        "Add prefix 'model.'",
        "Strip 'model.'",
    ]
    document.undo_stack.undo()
    assert next(iter(document.state_dict)) == "model.conv1.weight"


def test_strip_wrappers_removes_every_wrapper_prefix_at_once(make_document, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "compiled-ddp.pth"
    torch.save({f"module._orig_mod.{k}": v for k, v in Net().state_dict().items()}, path)
    document = make_document(path)
    recorder = Recorder(document)
    assert document.strip_wrappers()
    assert list(document.state_dict) == KEYS
    assert document.undo_stack.undoText() == "Strip 'module._orig_mod.'"
    assert not document.strip_wrappers()
    assert recorder.args("status_message")[-1] == ("No wrapper prefix to strip.",)
    assert document.undo_stack.count() == 1


def test_delete_keys_and_whole_modules(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    assert not document.delete_keys([])
    assert document.delete_keys(["conv1", "fc.bias"])
    assert list(document.state_dict) == ["fc.weight"]
    assert document.undo_stack.undoText() == "Delete conv1, fc.bias"
    document.undo_stack.undo()
    assert list(document.state_dict) == KEYS


def test_cast_keeps_integer_buffers(make_document, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bn.pth"
    torch.save(nn.BatchNorm1d(3).state_dict(), path)
    document = make_document(path)
    assert document.cast("bfloat16")
    dtypes = {key: t.dtype for key, t in document.state_dict.items()}
    assert dtypes["weight"] == torch.bfloat16 and dtypes["num_batches_tracked"] == torch.int64
    assert document.undo_stack.undoText() == "Cast to bfloat16"


def test_an_edit_without_a_file_says_to_open_one(make_document) -> None:  # type: ignore[no-untyped-def]
    document = make_document()
    recorder = Recorder(document)
    assert not document.rename_substring("a", "b")
    assert recorder.args("error_changed") == [(NO_CHECKPOINT,)]
    assert document.undo_stack.count() == 0


def test_an_unexpected_engine_failure_is_one_line_not_a_traceback(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    recorder = Recorder(document)

    def explode(_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError("Cannot copy out of meta tensor; no data!\nsecond line")

    assert not document.edit("Cast to float16", explode)
    assert recorder.args("error_changed") == [
        ("Cast to float16 failed: NotImplementedError: Cannot copy out of meta tensor; no data!",)
    ]
    assert document.undo_stack.count() == 0


def test_saved_devices_follow_renamed_tensors(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    checkpoint = open_checkpoint(net_file)
    checkpoint = dataclasses.replace(checkpoint, saved_devices={"fc.weight": "cuda:0"})
    document = make_document()
    document.load(checkpoint)
    assert document.rename_substring("fc", "head")
    assert document.saved_devices()["head.weight"] == "cuda:0"
    assert document.saved_devices()["head.bias"] == "cpu"


def test_reconcile_suggests_renames_and_applying_them_fits(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file, provider=lambda: Net("stem"))
    recorder = Recorder(document)
    result = document.reconcile()
    assert result is not None and not result.fits and result.fits_after_renames
    assert result.suggested_renames == {"conv1.weight": "stem.weight", "conv1.bias": "stem.bias"}
    assert document.apply_suggested_renames()
    assert list(document.state_dict)[:2] == ["stem.weight", "stem.bias"]
    assert document.undo_stack.undoText() == "Apply 2 suggested rename(s)"
    shown = recorder.args("reconciled")[-1]
    assert isinstance(shown[0], Reconciliation) and shown[0].fits and shown[1] is None
    document.undo_stack.undo()  # the shown comparison follows the weights
    undone = recorder.args("reconciled")[-1][0]
    assert isinstance(undone, Reconciliation) and not undone.fits


def test_apply_suggested_renames_with_nothing_to_apply(make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file, provider=Net)
    recorder = Recorder(document)
    assert not document.apply_suggested_renames()
    assert recorder.args("status_message")[-1] == ("No suggested renames to apply.",)
    assert document.undo_stack.count() == 0


def test_a_strict_load_failure_is_the_verdicts_reason(make_document, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "meta.pth"
    torch.save({k: torch.empty_like(v, device="meta") for k, v in Net().state_dict().items()}, path)
    document = make_document(path, provider=Net)
    recorder = Recorder(document)
    result = document.reconcile()
    assert result is not None and result.fits
    (_, strict_error), *_ = recorder.args("reconciled")
    assert isinstance(strict_error, str) and strict_error and "\n" not in strict_error


class Broken(WorkbenchError):
    pass


def raise_named() -> nn.Module:
    raise Broken("layer 3: Linear needs in_features")


def raise_unexpected() -> nn.Module:
    raise RuntimeError("can't allocate 256 TB")


@pytest.mark.parametrize(
    ("provider", "reason"),
    [
        (None, NO_PROVIDER_REASON),
        (lambda: None, NO_MODEL_REASON),
        (
            raise_named,
            "The current layer stack does not build a model: layer 3: Linear needs in_features",
        ),
        (
            raise_unexpected,
            "The current layer stack does not build a model: RuntimeError: can't allocate 256 TB",
        ),
    ],
)
def test_without_a_model_reconcile_says_why(make_document, net_file, provider, reason) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file, provider=provider)
    recorder = Recorder(document)
    assert document.model_problem() == reason
    assert document.reconcile() is None
    assert recorder.args("model_unavailable") == [(reason,)]
    assert make_document(provider=provider).model_problem() == NO_CHECKPOINT


def test_open_runs_on_the_loader_and_reports_activity(qtbot, make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document()
    recorder = Recorder(document)
    with qtbot.waitSignal(document.opened, timeout=10_000):
        document.open(net_file)
    assert list(document.state_dict) == KEYS
    activity = [args[0] for args in recorder.args("activity_changed")]
    assert len(activity) == 2 and str(activity[0]).startswith("Opening net.pth")
    assert activity[-1] == "" and document.can_open


def test_a_failed_open_keeps_the_open_file_and_says_why(qtbot, make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    bad = net_file.with_name("empty.pth")
    bad.write_bytes(b"")
    recorder = Recorder(document)
    with qtbot.waitSignal(document.error_changed, timeout=10_000, check_params_cb=bool):
        document.open(bad)
    message = recorder.args("error_changed")[-1][0]
    assert isinstance(message, str) and "empty.pth: the file is empty" in message
    assert document.path == net_file and list(document.state_dict) == KEYS


def test_an_unsafe_file_is_a_refusal_with_its_globals(qtbot, make_document, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(1), "p": Path("x")}, path)
    document = make_document()
    with qtbot.waitSignal(document.refusal_changed, timeout=10_000, check_params_cb=bool):
        document.open(path)
    refusal = document.refusal
    assert refusal is not None and refusal.path == path
    assert any("Path" in name for name in refusal.unsafe_globals)
    assert not document.is_open


def test_save_as_writes_the_edits_and_marks_the_document_clean(
    qtbot, make_document, net_file
) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    document.rename_substring("conv1", "stem")
    recorder = Recorder(document)
    target = net_file.with_name("fixed.safetensors")
    with qtbot.waitSignal(document.saved, timeout=10_000):
        document.save_as(target)
        assert not document.can_edit  # edits wait until the file is written
    assert not document.is_dirty and document.path == target
    assert document.title == "fixed.safetensors" and document.can_edit
    assert recorder.args("status_message")[-1] == (f"Saved 4 keys to {target}.",)
    saved = open_checkpoint(target).state_dict
    assert sorted(saved) == sorted(document.state_dict)
    assert torch.equal(saved["stem.weight"], document.state_dict["stem.weight"])
    document.undo_stack.undo()  # undo past the save point: dirty again
    assert document.is_dirty and document.title == "fixed.safetensors*"


def test_an_edit_made_while_saving_stays_unsaved(qtbot, make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    target = net_file.with_name("snapshot.pth")
    with qtbot.waitSignal(document.saved, timeout=10_000):
        document.save_as(target)
        document.delete_keys(["fc.bias"])
    assert document.is_dirty and document.title == "snapshot.pth*"
    assert list(open_checkpoint(target).state_dict) == KEYS


def test_a_failed_save_says_why_and_stays_dirty(qtbot, make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    document = make_document(net_file)
    document.cast("float16")
    with qtbot.waitSignal(document.error_changed, timeout=10_000, check_params_cb=bool) as error:
        document.save_as(net_file.with_name("weights.txt"))
    assert "unknown output suffix '.txt'" in error.args[0]
    assert document.is_dirty and document.path == net_file


def test_compare_then_edit_marks_the_comparison_outdated(qtbot, make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    other = {k: v + 1 for k, v in torch.load(net_file, weights_only=True).items()}
    other_path = net_file.with_name("other.pth")
    torch.save(other, other_path)
    document = make_document(net_file)
    recorder = Recorder(document)
    with qtbot.waitSignal(document.compared, timeout=10_000) as compared:
        document.compare_with(other_path)
    name, diff = compared.args
    assert name == "other.pth" and [change.key for change in diff.changed] == KEYS
    assert recorder.args("compare_started") == [("Comparing with other.pth…",)]
    assert document.diff is diff
    document.delete_keys(["fc"])
    assert recorder.count("diff_outdated") == 1 and document.diff is None


def test_comparing_with_an_unsafe_file_keeps_the_refusal(qtbot, make_document, net_file) -> None:  # type: ignore[no-untyped-def]
    evil = net_file.with_name("evil.pth")
    torch.save({"w": torch.ones(1), "p": Path("x")}, evil)
    document = make_document(net_file)
    with qtbot.waitSignal(document.compare_failed, timeout=10_000) as failed:
        document.compare_with(evil)
    message, can_trust = failed.args
    assert f"{evil}: refused to open" in message and can_trust
    assert document.compare_refusal is not None and document.compare_refusal.path == evil
