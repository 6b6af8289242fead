"""The web app: upload a photo, refine the prompt, preview and edit it, generate with progress and Stop.

`build_demo(services)` makes the gr.Blocks page around an engine and a refiner made elsewhere, so
tests can build it around a tiny model; `main()` reads the settings, sets up logging, makes the
engine and refiner once, and launches. This is the only module that imports gradio.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from pydantic import ValidationError

from i2v.engine import VideoEngine
from i2v.progress import Progress
from i2v.errors import Cancelled, I2VError
from i2v.hardware import Hardware, detect
from i2v.memory import RunShape, downgrade, fastest_fit, in_words, memory_profiles, pick, usable_gb
from i2v.families import CAMERA, all_families, resolve, weights_present
from i2v.request import CAMERA_MOTIONS, MAX_SEED, GenerationRequest
from prompting import Endpoint, PromptRefiner, RefinedPrompt
from settings import Settings

log = logging.getLogger("app")

I18N = gr.I18n(
    en={
        "title": "# i2v studio\nA photo and a few words in, a short video out.",
        "photo": "Photo (JPG, PNG, WebP)",
        "prompt": "Your prompt (any language)",
        "prompt_hint": "e.g. 猫转头 — the cat turns its head",
        "refine": "Refine",
        "use_mine": "Use my own words",
        "refined": "Refined prompt (English, editable: this is what the model gets)",
        "negative": "Negative prompt",
        "camera": "Camera motion",
        "model": "Model",
        "gpu": "Hardware and preset",
        "advanced": "Advanced settings",
        "height": "Height",
        "width": "Width",
        "frames": "Frames",
        "fps": "Frames per second",
        "steps": "Steps",
        "guidance": "Guidance scale",
        "seed": "Seed (-1 = random)",
        "strategy": "Memory strategy (auto: picked from GPU memory)",
        "tiling": "VAE tiling (less memory, slower decode)",
        "apply_preset": "Use this GPU's preset",
        "apply_plan": "Apply the downgrade plan",
        "dice": "🎲 Random seed",
        "auto_refine": "Refine before generating when the prompt was not refined",
        "generate": "Generate",
        "stop": "Stop",
        "params": "Parameters used",
        "history": "This session's videos",
        "history_pick": "Load a video of this session back into the form",
        "load": "Load into form",
        "no_weights": "**No diffusion weights on this machine.** The camera engine animates your photo with real "
        "camera moves: a motion preview, not a generated video. Add weights to the Hugging Face cache, or start "
        "with `--model /path/to/model`.",
        "no_llm": "**No LLM endpoint is set.** Prompts are refined offline by rules (camera and motion words), "
        "not translated. Set `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `I2V_LLM_MODEL` for full refinement.",
    },
    zh={
        "title": "# i2v studio 图生视频\n一张照片加几个字，生成一段短视频。",
        "photo": "照片（JPG、PNG、WebP）",
        "prompt": "你的提示词（任何语言）",
        "prompt_hint": "例如：猫转头",
        "refine": "优化提示词",
        "use_mine": "用我自己的原话",
        "refined": "优化后的提示词（英文，可编辑：模型收到的就是这段）",
        "negative": "反向提示词",
        "camera": "镜头运动",
        "model": "模型",
        "gpu": "硬件与预设",
        "advanced": "高级设置",
        "height": "高度",
        "width": "宽度",
        "frames": "帧数",
        "fps": "帧率",
        "steps": "步数",
        "guidance": "引导系数",
        "seed": "随机种子（-1 为随机）",
        "strategy": "显存策略（auto：按显存自动选择）",
        "tiling": "VAE 分块（省显存，解码稍慢）",
        "apply_preset": "使用本显卡的预设",
        "apply_plan": "应用降级方案",
        "dice": "🎲 随机种子",
        "auto_refine": "生成前自动优化未优化过的提示词",
        "generate": "生成",
        "stop": "停止",
        "params": "本次参数",
        "history": "本次会话的视频",
        "history_pick": "把本次会话的某个视频载回表单",
        "load": "载回表单",
        "no_weights": "**本机没有扩散模型权重。** 镜头引擎会用真实的镜头运动让照片动起来：这是运动预览，不是生成的视频。"
        "把权重放进 Hugging Face 缓存，或用 `--model /模型/路径` 启动。",
        "no_llm": "**未设置大模型接口。** 提示词由离线规则优化（识别镜头与运动词），不会翻译。"
        "设置 `OPENAI_BASE_URL`、`OPENAI_API_KEY` 和 `I2V_LLM_MODEL` 即可完整优化。",
    },
)

HISTORY_HEADERS = ["#", "time", "model", "seed", "size", "prompt"]


@dataclass
class Services:
    """What the page drives: made once in main(), or around tiny models in tests."""

    engine: VideoEngine
    refiner: PromptRefiner
    settings: Settings
    hardware: Hardware


class Jobs:
    """The cancel flag of each browser session's running job, so Stop reaches the engine."""

    def __init__(self):
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, session: str) -> threading.Event:
        with self._lock:
            flag = self._flags[session] = threading.Event()
        return flag

    def stop(self, session: str) -> bool:
        with self._lock:
            flag = self._flags.get(session)
        if flag is not None:
            flag.set()
        return flag is not None

    def finish(self, session: str, flag: threading.Event) -> None:
        with self._lock:
            if self._flags.get(session) is flag:
                del self._flags[session]


# ---------------------------------------------------------------------- models and their rules
def model_choices(settings: Settings) -> list[tuple[str, str]]:
    """The camera engine, every family whose weights are here, and the configured model."""
    choices = [(family.label, family.id) for family in all_families().values() if weights_present(resolve(family.id))]
    if settings.model not in ("auto", CAMERA) and settings.model not in [value for _, value in choices]:
        try:
            source = resolve(settings.model)
            choices.append((f"{source.family.label} — {Path(source.location).name}", settings.model))
        except I2VError as exc:
            log.warning("model %s is not usable: %s", settings.model, exc)
    return choices


def default_model(settings: Settings, choices: list[tuple[str, str]]) -> str:
    values = [value for _, value in choices]
    if settings.model in values:
        return settings.model
    return values[1] if len(values) > 1 else CAMERA


def rules_for(model: str) -> dict:
    """Slider bounds and defaults for `model`, from its family's rules."""
    family = resolve(model).family
    return dict(
        family=family.id, multiple=family.size_multiple, height=family.height, width=family.width,
        frames=family.num_frames, frame_min=max(family.min_frames, family.frame_step + family.frame_offset),
        frame_step=family.frame_step, frame_max=family.max_frames, fps=family.fps, steps=family.num_inference_steps,
        guidance=family.guidance_scale or 0.0, fixed=family.size_rule == "fixed", diffusion=bool(family.pipeline),
    )  # fmt: skip


def size_bounds(rules: dict) -> dict:
    """The height/width sliders' bounds for a family's rules."""
    step = rules["multiple"]
    return dict(minimum=max(16, step), maximum=max(1280, rules["height"], rules["width"]), step=step,
                interactive=not rules["fixed"])  # fmt: skip


# ---------------------------------------------------------------------- presentation
def describe(result: RefinedPrompt) -> str:
    who = f"LLM `{result.model}`" if result.source == "llm" else "offline rules"
    lines = [
        f"**Camera:** `{result.camera_motion}` · **Tags:** {', '.join(result.motion_tags) or '—'} · "
        f"**Intensity:** {result.motion_intensity:.2f} · **Subjects:** {', '.join(result.subjects) or '—'}",
        f"Refined by {who} in {result.seconds:.1f} s · input language: `{result.language or '—'}`",
    ]
    lines += [f"- ⚠️ {warning}" for warning in result.warnings]
    return "\n\n".join(lines[:2]) + ("\n\n" + "\n".join(lines[2:]) if len(lines) > 2 else "")


def history_rows(history: list[dict]) -> list[list]:
    return [
        [i + 1, item["time"], item["family"], item["seed"], f"{item['width']}x{item['height']}", item["prompt"][:80]]
        for i, item in enumerate(history)
    ]


def hardware_panel(hardware: Hardware, model: str, height=None, width=None, frames=None, steps=None,
                   strategy: str = "auto", tiling: bool = False, default_strategy: str = "none",
                   present: list[str] | None = None, device: str | None = None) -> tuple[str, dict]:  # fmt: skip
    """The GPU panel's text, and what the preset and plan buttons would apply, for the GPU `device` uses."""
    lines = [str(hardware.summary(device))]
    actions: dict = {}
    gpu = hardware.gpu_for(device)
    if gpu is None:
        return "\n\n".join(lines), actions
    vram = gpu.free_gb
    lines.append(f"Usable for a run: {usable_gb(vram):.1f} GB (a margin is kept free).")
    ram = hardware.ram_gb or None
    chosen = pick(vram, families=present, gpu_name=gpu.name, ram_gb=ram)
    if chosen is not None:
        s = chosen.shape
        lines.append(f"**Preset for this GPU:** `{s.family}` {s.width}x{s.height}, {s.num_frames} frames, "
                     f"{s.num_inference_steps} steps, {in_words(s.memory_strategy, s.vae_tiling)}: "
                     f"{_gb(chosen)}, ~{chosen.seconds / 60:.0f} min")  # fmt: skip
        actions["preset"] = s
    family = rules_for(model)["family"]
    if family == CAMERA or family not in memory_profiles():
        if family != CAMERA:
            lines.append(f"No memory measurements for `{family}` yet: no estimate.")
        return "\n\n".join(lines), actions
    wanted = RunShape(family, int(height), int(width), int(frames), int(steps),
                         default_strategy if strategy == "auto" else strategy, bool(tiling))  # fmt: skip
    auto = fastest_fit(wanted, vram, ram, gpu.name) if strategy == "auto" else None
    if auto is not None:  # what the engine will do with "auto": the fastest strategy that fits
        way = auto.shape
        lines.append(f"Your settings (auto: {in_words(way.memory_strategy, way.vae_tiling)}): "
                     f"{_gb(auto)}, ~{auto.seconds / 60:.1f} min: fits.")  # fmt: skip
        return "\n\n".join(lines), actions
    now, plan = downgrade(wanted, vram, ram, gpu.name)
    verdict = "fits" if not plan else "**does not fit**"
    lines.append(f"Your settings: {_gb(now)}, ~{now.seconds / 60:.1f} min: {verdict}.")
    if plan:
        lines += [f"{i}. {rung.change}: {_gb(rung.estimate)}, ~{rung.estimate.seconds / 60:.1f} min"
                  for i, rung in enumerate(plan, 1)]  # fmt: skip
        actions["plan"] = plan[-1].shape
    return "\n\n".join(lines), actions


def _gb(guess) -> str:
    """Peak GPU memory, and the host RAM that offloaded weights take."""
    return f"~{guess.peak_gb:.1f} GB" + (f" (+{guess.host_gb:.0f} GB host RAM)" if guess.host_gb else "")


# ---------------------------------------------------------------------- the page
def build_demo(services: Services) -> gr.Blocks:
    engine, refiner, settings = services.engine, services.refiner, services.settings
    jobs = Jobs()
    choices = model_choices(settings)
    first_model = default_model(settings, choices)
    first = rules_for(first_model)

    def refine(prompt: str, image: str | None, model: str):
        try:
            result = refiner.refine(prompt or "", rules_for(model)["family"], image)
        except (ValueError, I2VError) as exc:
            raise gr.Error(str(exc)) from None
        if result.source == "offline" and settings.llm_configured:
            gr.Warning(f"LLM refinement failed, used offline rules: {result.warnings[0]}")
        return (result.prompt, result.negative_prompt, result.camera_motion, describe(result),
                {"for": prompt or "", "text": result.prompt})  # fmt: skip

    def use_my_words(prompt: str):
        return prompt or "", {"for": prompt or "", "text": prompt or ""}

    def on_model_change(model: str, height, width, frames, fps, steps, guidance):
        """New bounds for `model`; the current values stay where the family allows them (so that
        applying a preset, which sets model and sizes together, keeps its sizes), else its defaults."""
        rules = rules_for(model)
        size = size_bounds(rules)

        def keep(value, default, low, high, grid, offset=0):
            ok = value is not None and low <= value <= high and (int(value) - offset) % grid == 0
            return value if ok and not rules["fixed"] else default

        frame_grid = rules["frame_step"]
        frame_offset = rules["frame_min"] % frame_grid if frame_grid > 1 else 0
        return (
            gr.update(value=keep(height, rules["height"], size["minimum"], size["maximum"], size["step"]), **size),
            gr.update(value=keep(width, rules["width"], size["minimum"], size["maximum"], size["step"]), **size),
            gr.update(value=keep(frames, rules["frames"], rules["frame_min"], rules["frame_max"], frame_grid,
                                 frame_offset),
                      minimum=rules["frame_min"], maximum=rules["frame_max"], step=frame_grid),  # fmt: skip
            gr.update(value=rules["fps"]),
            gr.update(value=steps if rules["diffusion"] and steps else (rules["steps"] or 1),
                      interactive=rules["diffusion"]),  # fmt: skip
            gr.update(value=rules["guidance"], interactive=rules["diffusion"]),
        )

    def generate(
        image, prompt, refined, negative, camera, model, height, width, num_frames, fps, steps, guidance, seed,
        auto_refine, strategy, tiling, history, last_refine, request: gr.Request, progress=gr.Progress(),
    ):  # fmt: skip
        if not image:
            raise gr.Error("Upload a photo first.")
        prompt, refined = prompt or "", (refined or "").strip()
        details = gr.update()
        # Refine first when nothing was refined, or when the prompt changed since and the refined
        # text is still the refiner's (a hand edit is the person's choice and is kept).
        stale = last_refine.get("for") != prompt and refined == last_refine.get("text", "").strip()
        if auto_refine and (not refined or stale):
            progress(0, desc="Refining the prompt")
            refined, refined_negative, camera, details, last_refine = refine(prompt, image, model)
            negative = negative or refined_negative
            gr.Info("Refined your prompt first; the refined text is what the model gets.")
        text = refined or prompt
        diffusion = rules_for(model)["diffusion"]
        try:
            job = GenerationRequest(
                image=image, prompt=text, negative_prompt=negative or "", model=model, height=int(height),
                width=int(width), num_frames=int(num_frames), fps=int(fps),
                num_inference_steps=int(steps) if diffusion else None,
                guidance_scale=float(guidance) if diffusion else None,
                seed=None if seed is None or int(seed) < 0 else int(seed), camera_motion=camera,
                memory_strategy=strategy or "auto", vae_tiling=bool(tiling),
            )  # fmt: skip
        except ValidationError as exc:
            raise gr.Error("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None

        def on_progress(update: Progress) -> None:
            if update.stage in ("denoising", "rendering"):
                eta = f" · ETA {update.eta:.0f} s" if update.eta is not None else ""
                progress((update.step, update.total), desc=f"{update.stage}: step {update.step}/{update.total}{eta}",
                         unit="steps" if update.stage == "denoising" else "frames")  # fmt: skip
            else:
                progress(None, desc=update.stage)

        session = request.session_hash or "api"
        cancel = jobs.start(session)
        try:
            result = engine.generate(job, on_progress=on_progress, cancel=cancel)
        except Cancelled:
            gr.Info("Stopped: no video was written.")
            return (None, {"stopped": True}, history, history_rows(history), refined, negative, camera, details,
                    last_refine)  # fmt: skip
        except I2VError as exc:
            raise gr.Error(str(exc)) from None
        finally:
            jobs.finish(session, cancel)
        for note in result.adjustments:
            gr.Warning(str(note))
        if result.preview:
            gr.Info("Camera-motion preview: the photo itself moves; no diffusion model was used.")
        # No "path" key: API clients take any dict with one for a file to download.
        params = result.model_dump(mode="json", exclude={"path", "metadata_path"})
        params.update(output_path=str(result.path), metadata_file=str(result.metadata_path),
                      time=time.strftime("%H:%M:%S"))  # fmt: skip
        history = [*history, params]
        return (str(result.path), params, history, history_rows(history), refined, negative, camera, details,
                last_refine)  # fmt: skip

    present = [value for _, value in choices if value != CAMERA]
    present_families = [rules_for(value)["family"] for value in present]

    def refresh_panel(model, height, width, frames, steps, strategy, tiling):
        text, actions = hardware_panel(services.hardware, model, height, width, frames, steps, strategy, tiling,
                                       engine.offload, present_families, engine.device)  # fmt: skip
        return text, {key: vars(value) for key, value in actions.items()}

    def apply(kind: str):
        def fill(actions: dict, model: str):
            target = actions.get(kind)
            if not target:
                raise gr.Error("Nothing to apply: no GPU here, or no plan is needed.")
            if kind == "preset":
                model = next((v for v in present if rules_for(v)["family"] == target["family"]), model)
            return (model, target["height"], target["width"], target["num_frames"], target["num_inference_steps"],
                    target["strategy"], target["vae_tiling"])  # fmt: skip

        return fill

    def stop(request: gr.Request) -> None:
        if jobs.stop(request.session_hash or "api"):
            log.info("stop requested for session %s", request.session_hash)

    def history_choices(history: list[dict]):
        labels = [f"#{i + 1} {item['time']} {item['family']} seed {item['seed']}" for i, item in enumerate(history)]
        return gr.update(choices=list(zip(labels, range(len(history)))), value=len(history) - 1 if history else None)

    def load_from_history(history: list[dict], index):
        if index is None or not 0 <= int(index) < len(history):
            raise gr.Error("Pick a video of this session first.")
        item = history[int(index)]
        model = item["model"] if item["model"] in [v for _, v in choices] else first_model
        return (item["output_path"], item, item["prompt"], item["negative_prompt"], item["camera_motion"], model,
                item["height"], item["width"], item["num_frames"], item["fps"], item["num_inference_steps"] or 1,
                item["guidance_scale"], item["seed"])  # fmt: skip

    with gr.Blocks(title="i2v studio") as demo:
        gr.Markdown(I18N("title"))
        if len(choices) == 1:
            gr.Markdown(I18N("no_weights"), elem_id="no-weights")
        if not settings.llm_configured:
            gr.Markdown(I18N("no_llm"), elem_id="no-llm")
        history = gr.State([])
        last_refine = gr.State({})  # {"for": the prompt refined, "text": what the refiner wrote}
        with gr.Row():
            with gr.Column(scale=1):
                # image_mode=None: the photo reaches the engine as uploaded, which normalises it and
                # explains what it cannot read (gradio would convert first and fail without a word).
                image = gr.Image(label=I18N("photo"), type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                 height=320, elem_id="photo")  # fmt: skip
                prompt = gr.Textbox(label=I18N("prompt"), placeholder="猫转头", lines=2, elem_id="prompt")
                with gr.Row():
                    refine_button = gr.Button(I18N("refine"), variant="secondary", elem_id="refine")
                    mine_button = gr.Button(I18N("use_mine"), size="sm", elem_id="use-mine")
                refined = gr.Textbox(label=I18N("refined"), lines=5, interactive=True, elem_id="refined")
                details = gr.Markdown(elem_id="refine-details")
                negative = gr.Textbox(label=I18N("negative"), lines=2, elem_id="negative")
                camera = gr.Dropdown(list(CAMERA_MOTIONS), value="static", label=I18N("camera"), elem_id="camera")
                model = gr.Dropdown(choices, value=first_model, label=I18N("model"), elem_id="model")
                gpu = gr.Markdown(label=I18N("gpu"), elem_id="gpu")
                actions = gr.State({})
                with gr.Row():
                    preset_button = gr.Button(I18N("apply_preset"), size="sm", elem_id="apply-preset",
                                              visible=bool(services.hardware.gpus))  # fmt: skip
                    plan_button = gr.Button(I18N("apply_plan"), size="sm", elem_id="apply-plan",
                                            visible=bool(services.hardware.gpus))  # fmt: skip
                with gr.Accordion(I18N("advanced"), open=False):
                    size = size_bounds(first)
                    with gr.Row():
                        height = gr.Slider(value=first["height"], label=I18N("height"), elem_id="height", **size)
                        width = gr.Slider(value=first["width"], label=I18N("width"), elem_id="width", **size)
                    with gr.Row():
                        frames = gr.Slider(first["frame_min"], first["frame_max"], value=first["frames"],
                                           step=first["frame_step"], label=I18N("frames"), elem_id="frames")  # fmt: skip
                        fps = gr.Slider(1, 60, value=first["fps"], step=1, label=I18N("fps"), elem_id="fps")
                    with gr.Row():
                        steps = gr.Slider(1, 100, value=first["steps"] or 1, step=1, label=I18N("steps"),
                                          interactive=first["diffusion"], elem_id="steps")  # fmt: skip
                        guidance = gr.Slider(0.0, 20.0, value=first["guidance"], step=0.5, label=I18N("guidance"),
                                             interactive=first["diffusion"], elem_id="guidance")  # fmt: skip
                    with gr.Row():
                        seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED, label=I18N("seed"),
                                         elem_id="seed")  # fmt: skip
                        dice = gr.Button(I18N("dice"), size="sm", elem_id="dice")
                    with gr.Row():
                        strategy = gr.Dropdown(["auto", "none", "model", "group", "sequential"], value="auto",
                                               label=I18N("strategy"), elem_id="strategy")  # fmt: skip
                        tiling = gr.Checkbox(value=False, label=I18N("tiling"), elem_id="tiling")
                    auto_refine = gr.Checkbox(value=settings.auto_refine, label=I18N("auto_refine"), elem_id="auto")
            with gr.Column(scale=1):
                # A plain label: gr.Video shows an I18n label as "[object Object]" (gradio 6.31).
                video = gr.Video(label="Video · 视频", autoplay=True, loop=True, interactive=False, elem_id="video")
                with gr.Row():
                    generate_button = gr.Button(I18N("generate"), variant="primary", elem_id="generate")
                    stop_button = gr.Button(I18N("stop"), variant="stop", elem_id="stop")
                params = gr.JSON(label=I18N("params"), elem_id="params")
                table = gr.Dataframe(headers=HISTORY_HEADERS, value=[], label=I18N("history"), interactive=False,
                                     elem_id="history")  # fmt: skip
                with gr.Row():
                    history_pick = gr.Dropdown(choices=[], label=I18N("history_pick"), elem_id="history-pick")
                    load_button = gr.Button(I18N("load"), size="sm", elem_id="load-history")

        refine_button.click(
            refine, [prompt, image, model], [refined, negative, camera, details, last_refine],
            api_name="refine", concurrency_id="llm", concurrency_limit=4,
        )  # fmt: skip
        mine_button.click(use_my_words, [prompt], [refined, last_refine], api_name=False)
        model.change(on_model_change, [model, height, width, frames, fps, steps, guidance],
                     [height, width, frames, fps, steps, guidance], api_name=False)  # fmt: skip
        sizing = [model, height, width, frames, steps, strategy, tiling]
        for control in sizing:
            control.change(refresh_panel, sizing, [gpu, actions], api_name=False, queue=False)
        demo.load(refresh_panel, sizing, [gpu, actions], api_name=False, queue=False)
        preset_button.click(apply("preset"), [actions, model], sizing, api_name=False, queue=False)
        plan_button.click(apply("plan"), [actions, model], sizing, api_name=False, queue=False)
        dice.click(lambda: random.randint(0, MAX_SEED), None, [seed], api_name=False)
        generating = generate_button.click(
            generate,
            [image, prompt, refined, negative, camera, model, height, width, frames, fps, steps, guidance, seed,
             auto_refine, strategy, tiling, history, last_refine],
            [video, params, history, table, refined, negative, camera, details, last_refine],
            api_name="generate", concurrency_id="gpu", concurrency_limit=1,
        )  # fmt: skip
        stop_button.click(stop, None, None, api_name="stop", cancels=[generating], queue=False)
        history.change(history_choices, [history], [history_pick], api_name=False, queue=False)
        load_button.click(
            load_from_history, [history, history_pick],
            [video, params, refined, negative, camera, model, height, width, frames, fps, steps, guidance, seed],
            api_name=False, queue=False,
        )  # fmt: skip
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    return demo


def make_services(settings: Settings) -> Services:
    endpoint = None
    if settings.llm_configured:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        endpoint = Endpoint(settings.openai_base_url, settings.llm_model, key, settings.llm_vision)
    return Services(
        engine=VideoEngine(settings.output_dir, device=settings.device, offload=settings.offload),
        refiner=PromptRefiner(endpoint, timeout_s=settings.llm_timeout_s),
        settings=settings,
        hardware=detect(),
    )


def launch(demo: gr.Blocks, settings: Settings, **kwargs):
    return demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.auth_pairs(),
        allowed_paths=[str(settings.output_dir)],
        i18n=I18N,
        footer_links=["api"],
        show_error=True,  # an unexpected failure still tells the person what broke
        **kwargs,
    )


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # set by start_app.sh too
    parser = argparse.ArgumentParser(description="Start the i2v studio web app.")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; I2V_HOST)")
    parser.add_argument("--port", type=int, help="port (default 7860; I2V_PORT)")
    parser.add_argument("--model", help="family id, local model folder, camera or auto (I2V_MODEL)")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link (off by default)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v not in (None, False)}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            print(f"settings: {'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.public and settings.auth is None:
        log.warning("listening on %s without I2V_AUTH: anyone who can reach this port can use the GPU",
                    "a public share link" if settings.share else settings.host)  # fmt: skip
    services = make_services(settings)
    log.info("%s", services.hardware.summary(services.engine.device))
    log.info("refiner: %s", f"{settings.llm_model} at {settings.openai_base_url}" if settings.llm_configured
             else "offline rules (no LLM endpoint set)")  # fmt: skip
    log.info("videos go to %s; queue holds %d jobs", settings.output_dir, settings.queue_size)
    demo = build_demo(services)
    print(f"i2v studio: open http://{'localhost' if settings.host in ('127.0.0.1', '0.0.0.0') else settings.host}"
          f":{settings.port}", flush=True)  # fmt: skip
    launch(demo, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
