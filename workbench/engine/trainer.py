"""The training loop every front end runs: the CLI, the window's worker thread and each DDP rank."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.engine.control import RunControl
from workbench.engine.cpu_threads import claim_intra_op_threads
from workbench.engine.datasets import make_loaders
from workbench.engine.devices import DeviceInfo, available_devices, resolve_device
from workbench.engine.early_stopping import EarlyStopping
from workbench.engine.errors import TrainingError
from workbench.engine.experiment import Experiment, dump_experiment
from workbench.engine.model_builder import build_model
from workbench.engine.optimization import (
    count_correct,
    make_loss,
    make_optimizer,
    make_scheduler,
    reports_accuracy,
    scheduler_steps_per_batch,
)
from workbench.engine.precision import Precision, make_precision
from workbench.engine.reports import (
    BaseObserver,
    BatchReport,
    EpochReport,
    RunStarted,
    TrainingObserver,
)
from workbench.engine.run_files import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    load_run_checkpoint,
    restore_rng_state,
    save_tensors,
    write_experiment_copy,
    write_json,
    write_metrics_csv,
)
from workbench.engine.strategy import SingleDeviceStrategy

Batch = tuple[torch.Tensor, torch.Tensor]


def uses_channels_last(setting: str, model: nn.Module) -> bool:
    """channels_last pays off for 2-D convolutions (about 1.3x on this project's CPU benchmark)."""
    if setting != "auto":
        return setting == "channels_last"
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


class Trainer:
    """Runs one experiment. The loop is the plain PyTorch loop, with plug-ins at its seams::

        for epoch in range(1, epochs + 1):
            model.train()
            for i, (x, y) in enumerate(train_loader):
                with precision.forward_context():          # autocast, or nothing
                    loss = loss_fn(model(x), y)
                precision.backward(loss / k)               # k = accumulate_grad_batches
                if (i + 1) % k == 0 or i + 1 == len(train_loader):
                    observer.on_after_backward(model)      # optional hook: gradients are ready
                    precision.optimizer_step(optimizer)    # GradScaler under 16-mixed
                    optimizer.zero_grad()
            model.eval()
            with torch.inference_mode():
                for x, y in val_loader:
                    ...                                    # val loss and accuracy

    `prepare()` validates and builds everything (bad input raises a WorkbenchError before any
    training); `fit()` trains and returns the summary. Progress goes to the observer; stop, pause
    and single steps come from the RunControl, checked between batches.
    """

    def __init__(
        self,
        experiment: Experiment,
        observer: TrainingObserver | None = None,
        control: RunControl | None = None,
        out_dir: str | Path | None = None,
        resume_from: str | Path | None = None,
        strategy: SingleDeviceStrategy | None = None,
        devices: list[DeviceInfo] | None = None,
        initial_weights: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.experiment = experiment
        self.initial_weights = initial_weights
        self.observer: TrainingObserver = observer or BaseObserver()
        self.control = control or RunControl()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.resume_from = resume_from
        self.strategy = strategy or SingleDeviceStrategy()
        self._devices = devices
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.start_epoch = 1
        self._prepared = False
        self.failed_reported = False

    # ------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        """Resolve the device and precision, load data, build the model; raise on bad input."""
        train = self.experiment.train
        self.strategy.setup()
        devices = self._devices if self._devices is not None else available_devices()
        self.device_info = resolve_device(self.strategy.device_name(train.device), devices)
        self.device = torch.device(self.device_info.name)
        self.precision: Precision = make_precision(train.precision, self.device_info)
        torch.manual_seed(train.seed)
        self.loaders = make_loaders(
            self.experiment.data,
            train.seed,
            rank=self.strategy.rank,
            world_size=self.strategy.world_size,
        )
        info = self.loaders.info
        input_shape = self.experiment.model.input_shape or info.input_shape
        torch.manual_seed(train.seed)  # the model's initial weights depend on the seed alone
        self.built = build_model(self.experiment.model, tuple(input_shape))
        if self.initial_weights is not None:  # e.g. weights the user loaded into the stack
            self.built.module.load_state_dict(self.initial_weights)
        self.channels_last = uses_channels_last(
            self.experiment.train.memory_format, self.built.module
        )
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = self.built.module.to(self.device).to(memory_format=memory_format)
        self.wrapped = self.strategy.wrap_model(self.model, self.device)
        self.optimizer = make_optimizer(self.wrapped.parameters(), train)
        self.steps_per_epoch = math.ceil(len(self.loaders.train) / train.accumulate_grad_batches)
        self.scheduler = make_scheduler(
            self.optimizer, train.scheduler, train.epochs, self.steps_per_epoch
        )
        self.loss_fn = make_loss(train.loss)
        self.with_accuracy = reports_accuracy(train.loss, self.built.output_shape[-1])
        self.early_stopping = EarlyStopping.from_spec(train.early_stopping)
        if self.resume_from is not None:
            self._restore(load_run_checkpoint(self.resume_from))
        self._prepared = True

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TrainingError(
                f"{self.resume_from}: this checkpoint does not fit the experiment's model or "
                f"optimizer ({str(exc).splitlines()[0]}); resume with the experiment it was made by"
            ) from None
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.precision.load_state_dict(state.get("precision", {}))
        if self.early_stopping is not None and state.get("early_stopping"):
            self.early_stopping.load_state_dict(state["early_stopping"])
        self.step = int(state["step"])
        self.start_epoch = int(state["epoch"]) + 1
        self.history = list(state.get("history", []))
        restore_rng_state(state["rng"])

    # ------------------------------------------------------------------ the loop

    def fit(self) -> dict[str, Any]:
        """Train to the end (or a stop, early stop or failure); return the run summary."""
        if not self._prepared:
            self.prepare()
        claim_intra_op_threads()
        started = time.perf_counter()
        try:
            summary = self._fit(started)
        except TrainingError as exc:
            self._report_failure(str(exc))
            self._write_files(self._summary(started, status="failed"), weights=False)
            raise
        except torch.OutOfMemoryError:
            message = (
                f"out of memory on {self.device_info.name} with batch size "
                f"{self.experiment.data.batch_size}; use a smaller batch with "
                "accumulate_grad_batches to keep the effective batch, or enable mixed precision"
            )
            self._report_failure(message)
            raise TrainingError(message) from None
        finally:
            self.strategy.teardown()
        self.observer.on_finished(summary)
        return summary

    def _report_failure(self, message: str) -> None:
        self.failed_reported = True
        self.observer.on_failed(message)

    def _fit(self, started: float) -> dict[str, Any]:
        train = self.experiment.train
        self.observer.on_started(self._started_report())
        status = "completed"
        for epoch in range(self.start_epoch, train.epochs + 1):
            epoch_started = time.perf_counter()
            result = self._train_epoch(epoch)
            if result is None:
                status = "stopped"
                break
            report = self._finish_epoch(epoch, result, time.perf_counter() - epoch_started)
            self.observer.on_epoch_end(report)
            self._after_epoch(report)
            if self.early_stopping is not None and self._should_stop_early(report):
                status = "early_stopped"
                break
        if self.early_stopping is not None and self.early_stopping.best_state is not None:
            self.model.load_state_dict(self.early_stopping.best_state)
            self.observer.on_log(
                f"Restored the best weights (epoch {self.early_stopping.best_epoch})"
            )
        summary = self._summary(started, status)
        self._write_files(summary)
        return summary

    def _started_report(self) -> RunStarted:
        data, train = self.experiment.data, self.experiment.train
        return RunStarted(
            epochs=train.epochs,
            batches_per_epoch=len(self.loaders.train),
            train_size=self.loaders.info.train_size,
            val_size=self.loaders.info.val_size,
            parameters=self.built.total_parameters,
            device=self.device_info.name,
            precision=self.precision.name,
            world_size=self.strategy.world_size,
            effective_batch_size=data.batch_size
            * train.accumulate_grad_batches
            * self.strategy.world_size,
            start_epoch=self.start_epoch,
        )

    def _train_epoch(self, epoch: int) -> tuple[float, float, int, float] | None:
        """One pass over the training data; None when a stop was requested."""
        train = self.experiment.train
        k = train.accumulate_grad_batches
        loader = self.loaders.train
        loader.set_epoch(epoch)
        batches = len(loader)
        self.wrapped.train()
        loss_sum, samples = 0.0, 0
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        epoch_started = time.perf_counter()
        for index, (x, y) in enumerate(loader):
            if index % k == 0 and not self.control.wait_for_next_step():
                return None
            x, y = self._to_device(x, y)
            boundary = (index + 1) % k == 0 or index + 1 == batches
            with self._sync_context(boundary):
                with self.precision.forward_context():
                    output = self.wrapped(x)
                    loss = self.loss_fn(output, y)
                self.precision.backward(loss / k)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrainingError(
                    f"the loss became {loss_value} at epoch {epoch}, batch {index}; lower the "
                    f"learning rate (now {self._lr():g}) or set gradient_clip_val"
                )
            if self.with_accuracy:
                correct += count_correct(output.detach(), y, train.loss)
            loss_sum += loss_value * len(y)
            samples += len(y)
            if boundary:
                self._optimizer_step()
            elapsed = max(time.perf_counter() - epoch_started, 1e-9)
            self.observer.on_batch_end(
                BatchReport(epoch, index, batches, loss_value, self.step, samples / elapsed)
            )
        return loss_sum, float(correct.item()), samples, time.perf_counter() - epoch_started

    def _sync_context(self, boundary: bool) -> Any:
        return contextlib.nullcontext() if boundary else self.strategy.no_sync(self.wrapped)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        if x.device == self.device:
            return x, y
        non_blocking = self.device.type == "cuda"
        return x.to(self.device, non_blocking=non_blocking), y.to(
            self.device, non_blocking=non_blocking
        )

    def _optimizer_step(self) -> None:
        # Optional hook (not every observer has it): the last moment the step's gradients exist,
        # since zero_grad(set_to_none=True) drops them right after the step. Under 16-mixed they
        # still carry the GradScaler's loss scale here.
        after_backward = getattr(self.observer, "on_after_backward", None)
        if after_backward is not None:
            after_backward(self.model)
        clip = self.experiment.train.gradient_clip_val
        if clip is not None:
            self.precision.unscale(self.optimizer)
            nn.utils.clip_grad_norm_(self.wrapped.parameters(), clip)
        self.precision.optimizer_step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        per_batch = scheduler_steps_per_batch(self.experiment.train.scheduler)
        # OneCycle raises if stepped past its planned total (the last epoch's partial step).
        if per_batch and self.scheduler.last_epoch < self.scheduler.total_steps:
            self.scheduler.step()

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _finish_epoch(
        self, epoch: int, result: tuple[float, float, int, float], seconds: float
    ) -> EpochReport:
        """Reduce the epoch's sums over ranks, validate, report; `seconds` includes validation."""
        loss_sum, correct, samples, train_seconds = result
        train_loss, train_correct, train_samples, val_loss, val_correct, val_samples = (
            self.strategy.reduce_sum(
                torch.tensor([loss_sum, correct, samples, *self._evaluate()], dtype=torch.float64)
            ).tolist()
        )
        lr = self._lr()
        report = EpochReport(
            epoch=epoch,
            epochs=self.experiment.train.epochs,
            train_loss=train_loss / max(train_samples, 1),
            train_accuracy=train_correct / train_samples
            if self.with_accuracy and train_samples
            else None,
            val_loss=val_loss / val_samples if val_samples else None,
            val_accuracy=val_correct / val_samples if self.with_accuracy and val_samples else None,
            lr=lr,
            samples_per_second=train_samples / max(train_seconds, 1e-9),  # all ranks together
            elapsed_seconds=seconds,
            skipped_steps=self.precision.skipped_steps,
        )
        self._step_epoch_scheduler(report)
        return report

    def _step_epoch_scheduler(self, report: EpochReport) -> None:
        spec = self.experiment.train.scheduler
        if self.scheduler is None or scheduler_steps_per_batch(spec):
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(
                report.val_loss if report.val_loss is not None else report.train_loss
            )
        else:
            self.scheduler.step()

    def evaluate_batches(self, batches: Iterable[Batch]) -> tuple[float, float, int]:
        """Summed loss, correct count and sample count of the model on `batches` (this rank)."""
        self.wrapped.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        samples = 0
        with torch.inference_mode(), self.precision.forward_context():
            for x, y in batches:
                x, y = self._to_device(x, y)
                output = self.wrapped(x)
                loss_sum += self.loss_fn(output, y).double() * len(y)
                if self.with_accuracy:
                    correct += count_correct(output, y, self.experiment.train.loss)
                samples += len(y)
        return float(loss_sum.item()), float(correct.item()), samples

    def _evaluate(self) -> tuple[float, float, int]:
        if len(self.loaders.val) == 0:
            return 0.0, 0.0, 0
        return self.evaluate_batches(self.loaders.val)

    def _should_stop_early(self, report: EpochReport) -> bool:
        assert self.early_stopping is not None
        stop = self.early_stopping.update(report, self.strategy.unwrap(self.wrapped))
        stop = self.strategy.broadcast_flag(stop)
        if stop:
            self.observer.on_log(
                f"Early stopping at epoch {report.epoch}: {self.early_stopping.monitor} has not "
                f"improved for {self.early_stopping.patience} epochs"
            )
        return stop

    def _after_epoch(self, report: EpochReport) -> None:
        self.history.append(dataclasses.asdict(report))
        if self.out_dir is not None and self.strategy.is_main:
            self._save_checkpoint(report.epoch)
            # Every epoch, so that a run killed mid-way still shows its curves in the run list.
            write_metrics_csv(self.out_dir / "metrics.csv", self.history)

    # ------------------------------------------------------------------ files

    def checkpoint_state(self, epoch: int) -> dict[str, Any]:
        """Everything needed to resume after `epoch`, loadable with weights_only=True."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.strategy.unwrap(self.wrapped).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "precision": self.precision.state_dict(),
            "early_stopping": self.early_stopping.state_dict() if self.early_stopping else None,
            "epoch": epoch,
            "step": self.step,
            "rng": capture_rng_state(),
            "history": self.history,
            "experiment": dump_experiment(self.experiment),
        }

    def _save_checkpoint(self, epoch: int) -> None:
        assert self.out_dir is not None
        save_tensors(self.checkpoint_state(epoch), self.out_dir / "checkpoint.pt")

    def _summary(self, started: float, status: str) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        train_loss, train_accuracy = last.get("train_loss"), last.get("train_accuracy")
        if status in ("completed", "early_stopped") and self.history:
            train_loss, train_accuracy = self._final_train_metrics()
        wall = time.perf_counter() - started
        epochs_done = int(last.get("epoch", self.start_epoch - 1))
        speeds = [row["samples_per_second"] for row in self.history]
        return {
            "status": status,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": last.get("val_loss"),
            "val_accuracy": last.get("val_accuracy"),
            "epochs_completed": epochs_done,
            "steps": self.step,
            "samples_per_second": sum(speeds) / len(speeds) if speeds else 0.0,
            "wall_seconds": wall,
            "parameters": self.built.total_parameters,
            "precision": self.precision.name,
            "device": self.device_info.name,
            "world_size": self.strategy.world_size,
            "effective_batch_size": self._started_report().effective_batch_size,
            "skipped_steps": self.precision.skipped_steps,
            "best_epoch": self.early_stopping.best_epoch if self.early_stopping else None,
        }

    def _final_train_metrics(self) -> tuple[float, float | None]:
        """Loss and accuracy of the final model on the training data, in eval mode."""
        self.loaders.train.set_epoch(0)
        loss_sum, correct, samples = self.strategy.reduce_sum(
            torch.tensor(self.evaluate_batches(self.loaders.train), dtype=torch.float64)
        ).tolist()
        accuracy = correct / samples if self.with_accuracy and samples else None
        return loss_sum / max(samples, 1), accuracy

    def _write_files(self, summary: dict[str, Any], weights: bool = True) -> None:
        """Write the run's files (rank 0 only); a failed run keeps its last good model.pth."""
        if self.out_dir is None or not self.strategy.is_main:
            return
        out = self.out_dir
        if weights:
            save_tensors(self.strategy.unwrap(self.wrapped).state_dict(), out / "model.pth")
        write_metrics_csv(out / "metrics.csv", self.history)
        write_json(out / "summary.json", summary)
        write_experiment_copy(out / "experiment.toml", self.experiment)
