"""The hardware panel: the machine, this GPU's preset, and what the person's settings need, as
message ids (rendered in the page's language by the studio), with what its buttons would apply;
and a line per device of the job pool (I2V_DEVICES) saying what it does now (`slot_lines`).

For the GPU the engine runs on (I2V_DEVICE; with a pool, its first device), never simply GPU 0.
Times are for that card.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from i2v.families import Family
from i2v.hardware import Hardware
from i2v.memory import (
    Estimate,
    RunShape,
    downgrade,
    faster_alternative,
    fastest_fit,
    in_words,
    memory_profiles,
    pick,
    usable_gb,
)
from messages import Message, catalogue, note


@dataclass
class Panel:
    """What the panel says, line by line, and the settings its buttons apply ("preset", "plan",
    "faster"; a button whose settings are missing has nothing to apply)."""

    lines: list[Message]
    actions: dict[str, RunShape] = field(default_factory=dict)


def memory_words(guess: Estimate) -> Message:
    """Peak GPU memory, and the host RAM that offloaded weights take."""
    if guess.host_gb:
        return note("panel.memory_host", peak_gb=guess.peak_gb, host_gb=guess.host_gb)
    return note("panel.memory", peak_gb=guess.peak_gb)


def with_speed(family: Family, shape: RunShape, speed: str, levers: dict | None = None) -> RunShape:
    """`shape` as `speed` would run it: its levers (those set on their own in `levers` win), and
    turbo's steps and guidance."""
    from i2v.speed import planned

    return shape.with_(**planned(family, speed, **(levers or {})))


def speed_line(family: Family, wanted: RunShape, vram: float, ram: float | None, gpu_name: str, auto: bool) -> Message:
    """How long each speed mode would take for these settings on this GPU (turbo where the family has
    distilled weights), before any run."""
    from i2v.speed import turbo_table

    minutes = {}
    for speed in ("exact", "fast", "turbo"):
        if speed == "turbo" and family.id not in turbo_table():
            minutes[speed] = "—"
            continue
        shape = with_speed(family, wanted, speed)
        guess = fastest_fit(shape, vram, ram, gpu_name) if auto else downgrade(shape, vram, ram, gpu_name)[0]
        minutes[speed] = f"~{guess.seconds / 60:.1f}" if guess is not None else "—"
    return note("panel.speeds", **minutes)


def _video(shape: RunShape) -> Message:
    return note("panel.video", family=shape.family, width=shape.width, height=shape.height,
                num_frames=shape.num_frames, steps=shape.num_inference_steps,
                placement=in_words(shape.memory_strategy, shape.vae_tiling))  # fmt: skip


def gpu_panel(hardware: Hardware, device: str | None, family: Family, wanted: RunShape | None, auto: bool,
              present: list[str] | None = None, speed: str = "exact", levers: dict | None = None) -> Panel:  # fmt: skip
    """The panel for `family` with the person's settings `wanted` (None for the camera engine) and
    `speed`; `auto`: memory strategy auto, so the engine will take the fastest strategy that fits.
    It also says how long each speed mode would take before a run."""
    panel = Panel([hardware.summary(device)])
    gpu = hardware.gpu_for(device)
    if gpu is None:
        return panel
    vram, ram = gpu.free_gb, hardware.ram_gb or None
    panel.lines.append(note("panel.usable", usable_gb=usable_gb(vram)))
    chosen = pick(vram, families=present, gpu_name=gpu.name, ram_gb=ram)
    if chosen is not None:
        panel.lines.append(note("panel.preset", video=_video(chosen.shape), memory=memory_words(chosen),
                                minutes=chosen.seconds / 60))  # fmt: skip
        panel.actions["preset"] = chosen.shape
    if wanted is None:
        return panel
    if family.id not in memory_profiles():
        panel.lines.append(note("panel.no_profile", family=family.id))
        return panel
    panel.lines.append(speed_line(family, wanted, vram, ram, gpu.name, auto))
    wanted = with_speed(family, wanted, speed, levers)
    fastest = fastest_fit(wanted, vram, ram, gpu.name) if auto else None
    if fastest is not None:  # what the engine will do with "auto": the fastest strategy that fits
        way = fastest.shape
        panel.lines.append(note("panel.auto_fits", placement=in_words(way.memory_strategy, way.vae_tiling),
                                memory=memory_words(fastest), minutes=fastest.seconds / 60))  # fmt: skip
        kept = fastest
    else:
        now, plan = downgrade(wanted, vram, ram, gpu.name)
        fits = "panel.fits" if not plan else "panel.does_not_fit"
        panel.lines.append(note(fits, memory=memory_words(now), minutes=now.seconds / 60))
        for index, rung in enumerate(plan, 1):
            panel.lines.append(note("panel.rung", index=index, change=rung.change,
                                    memory=memory_words(rung.estimate), minutes=rung.estimate.seconds / 60))  # fmt: skip
        if not plan:
            return panel
        panel.actions["plan"] = plan[-1].shape
        kept = plan[-1].estimate
    # A slow way to keep the video (sequential offload, say) is shown with a faster smaller video
    # beside it, applied only if the person asks.
    faster = faster_alternative(wanted, kept, vram, ram, gpu.name)
    if faster is not None:
        panel.lines.append(note("panel.faster", change=faster.change,
                                placement=in_words(faster.shape.memory_strategy, faster.shape.vae_tiling),
                                memory=memory_words(faster.estimate), minutes=faster.estimate.seconds / 60))  # fmt: skip
        panel.actions["faster"] = faster.shape
    return panel


# ---------------------------------------------------------------------- the pool's devices
def slot_lines(slots: list[dict]) -> list[Message]:
    """A line per device of the pool (`Pool.describe()`'s rows, in slot order): the device, its card
    and memory, and what it does now: idle (with the model it keeps loaded), running a job (the job,
    its model, its stage or step k/n), or one of a group of devices running one job."""
    return [_slot_line(row) for row in slots]


def _slot_line(row: dict) -> Message:
    name = row.get("name") or row["device"]
    where = {"index": row["index"], "device": row["device"], "name": "CPU" if name == "cpu" else name,
             "doing": _doing(row)}  # fmt: skip
    total, free = row.get("total_gb"), row.get("free_gb")
    if total is not None and free is not None:
        return note("panel.slot_memory", free_gb=free, total_gb=total, **where)
    if total is not None:  # a CPU slot given a size (cpu=24): what the planner counts on
        return note("panel.slot_sized", total_gb=total, **where)
    return note("panel.slot", **where)


def _doing(row: dict) -> Message:
    state = row.get("state")
    if state not in ("running", "group"):
        return note("panel.slot_idle_loaded", model=row["loaded"]) if row.get("loaded") else note("panel.slot_idle")
    # the job by the start of its id (the API's GET /api/v1/devices gives it whole)
    job, model, progress = (row.get("job") or "")[:8], row.get("model") or "—", _progress(row)
    if state == "group":
        group = row.get("group") or [row["index"]]
        return note("panel.slot_group", count=len(group), slots=", ".join(str(index) for index in group), job=job,
                    model=model, progress=progress)  # fmt: skip
    return note("panel.slot_running", job=job, model=model, progress=progress)


def _progress(row: dict) -> Message | str:
    """The job's stage in words ("denoising: step 3/20"), as the page's progress bar says it."""
    stage = row.get("stage")
    if not stage:
        return note("panel.slot_starting")
    words = note(f"studio.stage_{stage}") if f"studio.stage_{stage}" in catalogue("en") else stage
    if row.get("step") is not None and row.get("total"):
        return note("studio.progress", stage=words, step=row["step"], total=row["total"])
    return words
