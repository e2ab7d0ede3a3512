"""Reading back what a run logged to TensorBoard, for tests that check the logs."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_events(log_dir: Path | str) -> EventAccumulator:
    """Every event under `log_dir`, loaded: size 0 keeps all of each kind (the default samples images and tensors)."""
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def logged_scalars(log_dir: Path | str) -> dict[str, list[float]]:
    """Each logged scalar's values in logging order, by tag."""
    events = read_events(log_dir)
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
