"""The web app: upload a photo, refine the prompt, preview and edit it, generate with progress and Stop.

Layout and wiring only: what a click means lives in the studio service (studio/), which this page
calls. `build_demo(services)` makes the gr.Blocks page around a studio made elsewhere, so tests can
build it around a tiny model; `main()` reads the settings, sets up logging, makes the engine, the
refiner, the studio and its job store once, and serves the page with the REST API (api.py) beside it. This is the only module that imports gradio.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import json
import logging
import random
import sys
from dataclasses import dataclass

import gradio as gr
from pydantic import ValidationError

from i2v.memory import RunShape
from i2v.progress import Progress
from i2v.request import CAMERA_MOTIONS, MAX_SEED, PALETTES, SPEEDS, STRATEGIES, STYLES, GenerationRequest
from i2v.templates import templates
from messages import DEFAULT, LANGUAGES, MessageError, language_of, note, render
from settings import Settings, load
from studio import FORM, LEVER_CHOICES, Studio, StudioError
from studio.hosting import ANYONE, Hosting, make_hosting
from studio.panel import slot_lines
from studio.service import factor_of
from studio.store import CLIP_TYPES, ENDED, StoreError

log = logging.getLogger("app")


def bound(knob: str, rule: str):
    """A bound of a GenerationRequest knob ("ge", "le", "max_length"): the page's controls follow the request's."""
    return next(getattr(item, rule) for item in GenerationRequest.model_fields[knob].metadata if hasattr(item, rule))


REFERENCE_SLOTS = bound("references", "max_length")  # subjects: a photo or clip and its label each
# Issue 15's and 16's controls take their words from configs/messages/ ("page." ids), with every other
# message the page shows; gradio swaps them by the browser's language like the words below.
PAGE_WORDS = ("subjects_and_sound", "subjects_hint", "subjects", "no_subjects", "soundtrack", "own_sound",
              "style_and_motion", "template", "template_none", "style", "color_palette", "usual",
              "motion_intensity", "apply_advice", "gpus")  # fmt: skip


def page_words(language: str) -> dict[str, str]:
    """The words of issue 15's controls in `language`, keyed as I18N below keys its own."""
    words = {key: render(note(f"page.{key}"), language) for key in PAGE_WORDS}
    words |= {f"style_{style}": render(note(f"page.style_{style}"), language) for style in STYLES}
    words |= {f"palette_{palette}": render(note(f"page.palette_{palette}"), language) for palette in PALETTES}
    words |= {f"template_{name}": getattr(template.label, language) for name, template in templates().items()}
    for index in range(1, REFERENCE_SLOTS + 1):
        words[f"reference_{index}"] = render(note("page.reference", index=index), language)
        words[f"reference_label_{index}"] = render(note("page.reference_label", index=index), language)
    return words


# The page's own words (labels, buttons, notes); gradio picks the browser's language. Everything the
# server says (errors, warnings, the panel, refine details) comes from configs/messages/ instead.
I18N = gr.I18n(
    en={
        "title": "# i2v studio\nA photo and a few words in, a short video out.",
        "photo": "Photo (JPG, PNG, WebP)",
        "prompt": "Your prompt (any language)",
        "refine": "Refine",
        "use_mine": "Use my own words",
        "refined": "Prompt for the model (editable: this is what the model gets; the details say if it is English)",
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
        "speed": "Speed: exact (as published), fast (fp8, compiled, step cache), turbo (step-distilled weights)",
        "loras": "LoRAs (files in the LoRA folder)",
        "lora": "LoRA",
        "lora_weight": "Weight",
        "quantize": "Denoiser weights (auto: from speed; fp8 on GPUs of compute 8.9+)",
        "compile": "Compile the denoiser (auto: from speed)",
        "step_cache": "Step cache (auto: from speed)",
        "apply_preset": "Use this GPU's preset",
        "apply_plan": "Apply the downgrade plan",
        "apply_faster": "Use the faster, smaller video",
        "dice": "Random seed",
        "auto_refine": "Refine before generating when the prompt was not refined",
        "generate": "Generate",
        "stop": "Stop",
        "params": "Parameters used",
        "history": "Your videos (kept across restarts and browsers)",
        "history_pick": "A video of yours: play it (download from the player), load its settings, or delete it",
        "load": "Load into form",
        "delete": "Delete",
        "batch": "Batch: several photos x prompts",
        "batch_photos": "Photos",
        "batch_prompts": "Prompts, one per line (empty: the prompt above); each photo gets each prompt",
        "batch_go": "Queue them all",
        "longer": "Longer and smoother: segments, end photo, loop, interpolation, upscaling",
        "last_image": "End photo (models that take one)",
        "loop": "Loop: end on the first photo",
        "duration": "Duration in seconds (0: one segment, or one per prompt below)",
        "segments": "Segments: one prompt per line, each continuing from the last frame of the one before",
        "storyboard": "Write a storyboard for the duration",
        "keep_segments": "Keep finished segments when stopped",
        "interpolate": "Frame interpolation (same duration, x fps)",
        "upscale": "Upscale (at most 3840x2160)",
        "keyframe_photos": "Keyframe photos (models that take keyframes)",
        "keyframe_frames": "Their frames, in the same order (48, 96)",
        "no_weights": "**No diffusion weights on this machine.** The camera engine animates your photo with real "
        "camera moves: a motion preview, not a generated video. Add weights to the Hugging Face cache, or start "
        "with `--model /path/to/model`.",
        "no_llm": "**No LLM endpoint is set.** Prompts are refined offline by rules (camera and motion words), "
        "not translated. Set `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `I2V_LLM_MODEL` for full refinement.",
        **page_words("en"),
    },
    zh={
        "title": "# i2v studio 图生视频\n一张照片加几个字，生成一段短视频。",
        "photo": "照片（JPG、PNG、WebP）",
        "prompt": "你的提示词（任何语言）",
        "refine": "优化提示词",
        "use_mine": "用我自己的原话",
        "refined": "给模型的提示词（可编辑：模型收到的就是这段；下方说明是否已译成英文）",
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
        "speed": "速度：精确（原版）、快速（fp8、编译、步间缓存）、极速（步数蒸馏权重）",
        "loras": "LoRA（LoRA 文件夹中的文件）",
        "lora": "LoRA",
        "lora_weight": "权重",
        "quantize": "去噪网络权重（auto：随速度模式；fp8 需计算能力 8.9+ 的显卡）",
        "compile": "编译去噪网络（auto：随速度模式）",
        "step_cache": "步间缓存（auto：随速度模式）",
        "apply_preset": "使用本显卡的预设",
        "apply_plan": "应用降级方案",
        "apply_faster": "改用更快的小视频",
        "dice": "随机种子",
        "auto_refine": "生成前自动优化未优化过的提示词",
        "generate": "生成",
        "stop": "停止",
        "params": "本次参数",
        "history": "您的视频（重启和换浏览器后仍在）",
        "history_pick": "您的某个视频：播放（在播放器中下载）、载回设置，或删除",
        "load": "载回表单",
        "delete": "删除",
        "batch": "批量：多张照片 × 多条提示词",
        "batch_photos": "照片",
        "batch_prompts": "提示词，每行一条（留空：用上面的提示词）；每张照片配每条提示词",
        "batch_go": "全部排队",
        "longer": "更长更流畅：分段、结束照片、循环、插帧、放大",
        "last_image": "结束照片（支持的模型）",
        "loop": "循环：以第一张照片结束",
        "duration": "时长（秒；0：一段，或下面每行一段）",
        "segments": "分段：每行一条提示词，每段从上一段的最后一帧继续",
        "storyboard": "按时长写分镜",
        "keep_segments": "停止时保留已完成的片段",
        "interpolate": "插帧（时长不变，帧率 ×）",
        "upscale": "放大（最高 3840x2160）",
        "keyframe_photos": "关键帧照片（支持关键帧的模型）",
        "keyframe_frames": "它们所在的帧，顺序相同（48, 96）",
        "no_weights": "**本机没有扩散模型权重。** 镜头引擎会用真实的镜头运动让照片动起来：这是运动预览，不是生成的视频。"
        "把权重放进 Hugging Face 缓存，或用 `--model /模型/路径` 启动。",
        "no_llm": "**未设置大模型接口。** 提示词由离线规则优化（识别镜头与运动词），不会翻译。"
        "设置 `OPENAI_BASE_URL`、`OPENAI_API_KEY` 和 `I2V_LLM_MODEL` 即可完整优化。",
        **page_words("zh"),
    },
)


# The gradio API's names for the form's values (`client.predict(..., refined=..., api_name="/generate")`),
# as they were before the form took the knobs' names.
API_NAMES = {"words": "prompt", "prompt": "refined", "negative_prompt": "negative", "camera_motion": "camera",
             "num_inference_steps": "steps", "guidance_scale": "guidance", "memory_strategy": "strategy",
             "vae_tiling": "tiling"}  # fmt: skip


@dataclass
class Services:
    """What the page drives: made once in main(), or around tiny models in tests."""

    studio: Studio
    settings: Settings
    hosting: Hosting  # the job store and its pool (a worker per device): every job goes through it


# ---------------------------------------------------------------------- gradio, adjusted
def user_error(text: str, title: str = "Error") -> gr.Error:
    """A refusal the person can act on: shown to them, not printed as a traceback (gradio prints one
    for every exception but a gr.Error with print_exception=False)."""
    return gr.Error(text, title=title, print_exception=False)


def language(request: gr.Request | None) -> str:
    """The page's language, from the browser's Accept-Language (API clients may send one too)."""
    headers = getattr(request, "headers", None) or {}
    return language_of(headers.get("accept-language"))


def unopened(image: gr.Image) -> gr.Image:
    """Give the handler the uploaded file's path without opening it. gradio's own preprocess opens it
    with PIL and turns a decompression bomb, an empty or a non-image file into "Could not preprocess
    input component ..." with its temp path; the engine explains them instead, in one line. An
    instance override, not a subclass: a gr.Image subclass makes gradio write app.pyi beside app.py."""

    def preprocess(payload):
        if payload is None or payload.path is None or (payload.url or "").startswith("data:"):
            return gr.Image.preprocess(image, payload)
        return str(payload.path)

    image.preprocess = preprocess
    return image


def checked_by_the_engine(number):
    """Pass a slider's or number's value on unchecked: the request and the engine check every bound
    and say so in the page's language (gradio's own refusal is English only)."""
    number.preprocess = lambda payload: payload
    return number


def interpolated_fps(model_fps: int, factor) -> int:
    """The fps a model's frames come to under the interpolation radio ("x2": twice), at most the request's most."""
    return min(bound("fps", "le"), model_fps * factor_of(factor))


def template_choices() -> list[tuple]:
    """The motion templates as (label in the page's language, name), "none" first (configs/templates.toml's order)."""
    return [(I18N("template_none"), ""), *((I18N(f"template_{name}"), name) for name in templates())]


def toast_titles() -> str:
    """A script for the page's head: gradio 6.31 titles each toast with its type in English
    ("Error", "Warning", "Info") whatever title is sent; in another language the browser swaps in
    that language's words (configs/messages/), as gradio's own labels follow the browser's language."""
    words = {language: {kind.capitalize(): render(note(f"studio.title_{kind}"), language)
                        for kind in ("error", "warning", "info")} for language in LANGUAGES if language != DEFAULT}  # fmt: skip
    return (
        "<script>(() => {const words = " + json.dumps(words, ensure_ascii=False) + ";"
        "const table = words[(navigator.language || '').slice(0, 2).toLowerCase()]; if (!table) return;"
        "const retitle = () => document.querySelectorAll('.toast-title').forEach(el => {"
        "const text = el.firstChild; const word = text && text.nodeType === 3 && table[text.textContent.trim()];"
        "if (word) text.textContent = word + ' ';});"
        "new MutationObserver(retitle).observe(document.documentElement, {childList: true, subtree: true});"
        "})();</script>"
    )


def owner_of(request: gr.Request | None) -> str:
    """The signed-in user (I2V_AUTH), or ANYONE when nobody signs in: the owner of a job."""
    return getattr(request, "username", None) or ANYONE


def build_demo(services: Services) -> gr.Blocks:
    studio, settings, hosting = services.studio, services.settings, services.hosting
    choices = studio.choices()
    first_model = studio.default_model()
    first = studio.rules(first_model)
    capacity = hosting.pool.capacity  # the most GPUs one video may ask: the pool's devices

    def refusal(error: Exception, lang: str, what: str) -> gr.Error:
        """Our errors in the person's words (logged as one line); anything else is a bug: logged with
        its traceback, and the person told so without one."""
        text = studio.explain(error, lang)
        if text is None:
            log.exception("%s failed", what)
            text = studio.say(note("studio.unexpected", kind=type(error).__name__), lang)
        else:
            log.info("%s refused: %s", what, error if not isinstance(error, ValidationError) else text)
        return user_error(text, studio.say(note("studio.title_error"), lang))

    def shown(path: str) -> str:
        """A video for this page: a copy in gradio's cache (cleaned after a day), which only the page
        that asked for it is told about; gradio serves nothing from the output folder itself."""
        from gradio.processing_utils import save_file_to_cache

        return save_file_to_cache(path, demo.GRADIO_CACHE)

    def warn(text: str, lang: str) -> None:
        gr.Warning(text, title=studio.say(note("studio.title_warning"), lang))

    def inform(text: str, lang: str) -> None:
        gr.Info(text, title=studio.say(note("studio.title_info"), lang))

    # Uploaded photos leave gradio's cache a day after they came; videos are never copied there.
    with gr.Blocks(title="i2v studio", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(I18N("title"))
        if not studio.has_weights():
            gr.Markdown(I18N("no_weights"), elem_id="no-weights")
        if not settings.llm_configured:
            gr.Markdown(I18N("no_llm"), elem_id="no-llm")
        history = gr.State([])
        last_refine = gr.State({})  # {"for": the words refined, "text": what the refiner wrote}
        actions = gr.State({})
        shown_slots = gr.State("")  # the pool's devices as the panel shows them (see refresh_slots)
        advice = gr.State({})  # the advice shown: {"values": {knob: value}, "text": Markdown}, or {}
        with gr.Row():
            with gr.Column(scale=1):
                # image_mode=None and unopened: the photo reaches the engine as uploaded; it
                # normalises it and explains what it cannot read.
                image = unopened(gr.Image(label=I18N("photo"), type="filepath", image_mode=None,
                                          sources=["upload", "clipboard"], height=320, elem_id="photo"))  # fmt: skip
                words = gr.Textbox(label=I18N("prompt"), placeholder="猫转头", lines=2, elem_id="prompt")
                with gr.Row():
                    refine_button = gr.Button(I18N("refine"), variant="secondary", elem_id="refine")
                    mine_button = gr.Button(I18N("use_mine"), size="sm", elem_id="use-mine")
                refined = gr.Textbox(label=I18N("refined"), lines=5, interactive=True, elem_id="refined")
                details = gr.Markdown(elem_id="refine-details")
                # The refiner's suggested settings (else the template's) and the planner's estimate for
                # them: shown, never applied unasked; the one button applies them to the form.
                advice_box = gr.Markdown(elem_id="advice")
                advice_button = gr.Button(I18N("apply_advice"), size="sm", visible=False, elem_id="apply-advice")
                negative = gr.Textbox(label=I18N("negative"), lines=2, elem_id="negative")
                camera = gr.Dropdown(list(CAMERA_MOTIONS), value="static", label=I18N("camera"), elem_id="camera")
                model = gr.Dropdown(choices, value=first_model, label=I18N("model"), elem_id="model")
                speed = gr.Radio(list(SPEEDS), value="exact", label=I18N("speed"), elem_id="speed")
                lora_names = [None, *studio.lora_files()]
                with gr.Accordion(I18N("loras"), open=False, visible=len(lora_names) > 1):
                    with gr.Row():
                        # custom values reach the studio, which names a file not in the folder in our words
                        lora_1 = gr.Dropdown(lora_names, value=None, label=I18N("lora"), elem_id="lora-1",
                                               allow_custom_value=True)  # fmt: skip
                        lora_weight_1 = gr.Slider(-2.0, 2.0, value=1.0, step=0.05, label=I18N("lora_weight"),
                                                  elem_id="lora-weight-1")  # fmt: skip
                    with gr.Row():
                        # custom values reach the studio, which names a file not in the folder in our words
                        lora_2 = gr.Dropdown(lora_names, value=None, label=I18N("lora"), elem_id="lora-2",
                                               allow_custom_value=True)  # fmt: skip
                        lora_weight_2 = gr.Slider(-2.0, 2.0, value=1.0, step=0.05, label=I18N("lora_weight"),
                                                  elem_id="lora-weight-2")  # fmt: skip
                gpu = gr.Markdown(label=I18N("gpu"), elem_id="gpu")
                with gr.Row(visible=bool(studio.hardware.gpus)):
                    preset_button = gr.Button(I18N("apply_preset"), size="sm", elem_id="apply-preset")
                    plan_button = gr.Button(I18N("apply_plan"), size="sm", elem_id="apply-plan")
                    faster_button = gr.Button(I18N("apply_faster"), size="sm", elem_id="apply-faster")
                first_family = studio.family(first_model)
                with gr.Accordion(I18N("subjects_and_sound"), open=False, elem_id="subjects-and-sound"):
                    # Shown for models that take references; hidden, they hold nothing (see on_capabilities).
                    with gr.Column(visible=first_family.references, elem_id="subjects-box") as subjects_box:
                        gr.Markdown(I18N("subjects_hint"), elem_id="subjects-hint")
                        subjects = gr.Gallery(label=I18N("subjects"), columns=REFERENCE_SLOTS, height=150,
                                              allow_preview=False, interactive=False, elem_id="subjects")  # fmt: skip
                        reference_files, reference_labels = [], []
                        for index in range(1, REFERENCE_SLOTS + 1):
                            with gr.Row(equal_height=True):
                                reference_files.append(gr.File(type="filepath", height=90,
                                                               file_types=["image", *CLIP_TYPES.values()],
                                                               label=I18N(f"reference_{index}"),
                                                               elem_id=f"reference-{index}"))  # fmt: skip
                                reference_labels.append(gr.Textbox(label=I18N(f"reference_label_{index}"), max_lines=1,
                                                                   placeholder="the grey cat",
                                                                   elem_id=f"reference-label-{index}"))  # fmt: skip
                    subjects_note = gr.Markdown(I18N("no_subjects"), visible=not first_family.references,
                                                elem_id="no-subjects")  # fmt: skip
                    # format=None: the file reaches the engine as uploaded (gradio would re-encode it to wav)
                    soundtrack = gr.Audio(type="filepath", format=None, sources=["upload"], label=I18N("soundtrack"),
                                          visible=not first_family.audio, elem_id="soundtrack")  # fmt: skip
                    sound_note = gr.Markdown(I18N("own_sound"), visible=first_family.audio, elem_id="own-sound")
                with gr.Accordion(I18N("style_and_motion"), open=False, elem_id="style-and-motion"):
                    template = gr.Dropdown(template_choices(), value="", label=I18N("template"), elem_id="template")
                    template_details = gr.Markdown(elem_id="template-details")
                    with gr.Row():  # "" (the first choice): the model's usual look and colours
                        styles = [(I18N("usual"), ""), *((I18N(f"style_{name}"), name) for name in STYLES)]
                        style = gr.Dropdown(styles, value="", label=I18N("style"), elem_id="style")
                        palettes = [(I18N("usual"), ""), *((I18N(f"palette_{name}"), name) for name in PALETTES)]
                        color_palette = gr.Dropdown(palettes, value="", label=I18N("color_palette"),
                                                    elem_id="color-palette")  # fmt: skip
                    # 0 is the model's usual (no intensity asked), as the duration's 0 is one segment
                    motion_intensity = gr.Slider(0.0, bound("motion_intensity", "le"), value=0.0, step=0.1,
                                                 label=I18N("motion_intensity"), elem_id="motion-intensity")
                with gr.Accordion(I18N("advanced"), open=False):
                    with gr.Row():
                        height = gr.Slider(value=first["height"], label=I18N("height"), elem_id="height", **first["size"])
                        width = gr.Slider(value=first["width"], label=I18N("width"), elem_id="width", **first["size"])
                    with gr.Row():
                        frames = gr.Slider(first["frame_min"], first["frame_max"], value=first["frames"],
                                           step=first["frame_step"], label=I18N("frames"), elem_id="frames")  # fmt: skip
                        fps = gr.Slider(bound("fps", "ge"), bound("fps", "le"), value=first["fps"], step=1,
                                        label=I18N("fps"), elem_id="fps")  # fmt: skip
                    with gr.Row():
                        steps = gr.Slider(1, 100, value=first["steps"], step=1, label=I18N("steps"),
                                          interactive=first["diffusion"], elem_id="steps")  # fmt: skip
                        guidance = gr.Slider(0.0, 20.0, value=first["guidance"], step=0.5, label=I18N("guidance"),
                                             interactive=first["diffusion"], elem_id="guidance")  # fmt: skip
                    with gr.Row():
                        seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED, label=I18N("seed"),
                                         elem_id="seed")  # fmt: skip
                        dice = gr.Button(I18N("dice"), size="sm", elem_id="dice")
                    with gr.Row():
                        strategy = gr.Dropdown(["auto", *STRATEGIES], value="auto", label=I18N("strategy"),
                                               elem_id="strategy")  # fmt: skip
                        tiling = gr.Checkbox(value=False, label=I18N("tiling"), elem_id="tiling")
                    # one video across several GPUs of the pool: shown when it has more than one (a
                    # slider's maximum must pass its minimum, hence 2 on a one-device pool, where it is hidden)
                    gpus = gr.Slider(1, max(capacity, 2), value=1, step=1, label=I18N("gpus"), visible=capacity > 1,
                                     interactive=first["splits"], elem_id="gpus")  # fmt: skip
                    with gr.Row():  # the speed levers one by one; auto: from the speed above
                        quantize = gr.Dropdown(list(LEVER_CHOICES["quantize"]), value="auto", label=I18N("quantize"),
                                               elem_id="quantize")  # fmt: skip
                        compile_ = gr.Dropdown(list(LEVER_CHOICES["compile"]), value="auto", label=I18N("compile"),
                                               elem_id="compile")  # fmt: skip
                        step_cache = gr.Dropdown(list(LEVER_CHOICES["step_cache"]), value="auto",
                                                 label=I18N("step_cache"), elem_id="step-cache")  # fmt: skip
                    auto_refine = gr.Checkbox(value=settings.auto_refine, label=I18N("auto_refine"), elem_id="auto")
                with gr.Accordion(I18N("longer"), open=False, elem_id="longer"):
                    with gr.Row():
                        duration = gr.Number(value=0, minimum=0, maximum=600, label=I18N("duration"),
                                             elem_id="duration")  # fmt: skip
                        storyboard_button = gr.Button(I18N("storyboard"), size="sm", elem_id="storyboard")
                    segments = gr.Textbox(lines=4, label=I18N("segments"), elem_id="segments",
                                          placeholder="a cat looks up\nthe cat turns its head to the window")  # fmt: skip
                    keep_segments = gr.Checkbox(value=False, label=I18N("keep_segments"), elem_id="keep-segments")
                    last_image = unopened(gr.Image(label=I18N("last_image"), type="filepath", image_mode=None,
                                                   sources=["upload", "clipboard"], height=160, elem_id="last-photo"))  # fmt: skip
                    loop = gr.Checkbox(value=False, label=I18N("loop"), elem_id="loop")
                    with gr.Row():  # models that take keyframes (ltx-video-condition)
                        keyframe_photos = gr.File(file_count="multiple", file_types=["image"],
                                                  label=I18N("keyframe_photos"), elem_id="keyframe-photos")  # fmt: skip
                        keyframe_frames = gr.Textbox(label=I18N("keyframe_frames"), placeholder="48, 96",
                                                     elem_id="keyframe-frames")  # fmt: skip
                    with gr.Row():
                        interpolate = gr.Radio(["x1", "x2", "x4"], value="x1", label=I18N("interpolate"),
                                               elem_id="interpolate")  # fmt: skip
                        upscale = gr.Radio(["x1", "x2", "x4"], value="x1", label=I18N("upscale"), elem_id="upscale")
                with gr.Accordion(I18N("batch"), open=False):  # several photos x prompts, with the form's settings
                    batch_photos = gr.File(file_count="multiple", file_types=["image"], label=I18N("batch_photos"),
                                           elem_id="batch-photos")  # fmt: skip
                    batch_prompts = gr.Textbox(lines=3, label=I18N("batch_prompts"), placeholder="猫转头\n镜头推近",
                                               elem_id="batch-prompts")  # fmt: skip
                    batch_button = gr.Button(I18N("batch_go"), elem_id="batch-go")
                    batch_note = gr.Markdown(elem_id="batch-note")
            with gr.Column(scale=1):
                # A plain label: gr.Video shows an I18n label as "[object Object]" (gradio 6.31).
                video = gr.Video(label="Video · 视频", autoplay=True, loop=True, interactive=False, elem_id="video")
                with gr.Row():
                    generate_button = gr.Button(I18N("generate"), variant="primary", elem_id="generate")
                    stop_button = gr.Button(I18N("stop"), variant="stop", elem_id="stop")
                params = gr.JSON(label=I18N("params"), elem_id="params")
                thumbs = gr.Gallery(label=I18N("history"), columns=6, height=170, allow_preview=False,
                                    elem_id="history-thumbs")  # fmt: skip
                table = gr.Dataframe(headers=studio.history_headers("en"), value=[], label=I18N("history"),
                                     interactive=False, elem_id="history")  # fmt: skip
                with gr.Row():
                    history_pick = gr.Dropdown(choices=[], label=I18N("history_pick"), elem_id="history-pick")
                    load_button = gr.Button(I18N("load"), size="sm", elem_id="load-history")
                    delete_button = gr.Button(I18N("delete"), size="sm", variant="stop", elem_id="delete-history")
        for number in (height, width, frames, fps, steps, guidance, seed, motion_intensity, gpus):
            checked_by_the_engine(number)

        # The form, by the studio's names for it (studio.FORM): the knobs of a request.
        form = dict(image=image, words=words, prompt=refined, negative_prompt=negative, camera_motion=camera,
                    model=model, height=height, width=width, num_frames=frames, fps=fps, num_inference_steps=steps,
                    guidance_scale=guidance, seed=seed, auto_refine=auto_refine, memory_strategy=strategy,
                    vae_tiling=tiling, speed=speed, lora_1=lora_1, lora_weight_1=lora_weight_1, lora_2=lora_2,
                    lora_weight_2=lora_weight_2, quantize=quantize, compile=compile_, step_cache=step_cache,
                    last_image=last_image, loop=loop, duration=duration, segments=segments, keep_segments=keep_segments,
                    interpolate=interpolate, upscale=upscale, keyframe_photos=keyframe_photos,
                    keyframe_frames=keyframe_frames,
                    **{f"reference_{index}": slot for index, slot in enumerate(reference_files, 1)},
                    **{f"reference_label_{index}": box for index, box in enumerate(reference_labels, 1)},
                    template=template, soundtrack=soundtrack, style=style, color_palette=color_palette,
                    motion_intensity=motion_intensity, gpus=gpus)  # fmt: skip
        assert tuple(form) == FORM, "the page's form and studio.FORM must agree"
        # what the hardware panel plans with: the run shape's knobs that the form has, and the speed
        sizing = ("model", *(knob for knob in RunShape.knobs() if knob in form), "speed")

        # /refine's values: the person's words, the photo and the model first (its API as it always
        # was), then the rest of the form (template, style, references, the settings the advice is for)
        refine_names = ["words", "image", "model", *(name for name in form if name not in ("words", "image", "model"))]

        def refine(request: gr.Request, *values):
            lang = language(request)
            try:
                result = studio.refine_form(dict(zip(refine_names, values)), lang)
            except Exception as exc:  # noqa: BLE001 - refusal() maps ours and logs the rest
                raise refusal(exc, lang, "refine") from None
            if result.warning:
                warn(result.warning, lang)
            return {refined: result.prompt, negative: result.negative_prompt, camera: result.camera_motion,
                    details: result.details, last_refine: result.last, advice: advice_of(result.advice)}  # fmt: skip

        def advice_of(made) -> dict:
            """A refinement's advice (studio.Advice, or its dict from a job's result) as the page keeps it."""
            made = made if isinstance(made, dict) or made is None else dataclasses.asdict(made)
            return {"values": made["values"], "text": made["text"]} if made else {}

        def show_advice(kept: dict):
            kept = kept or {}
            return {advice_box: kept.get("text", ""), advice_button: gr.update(visible=bool(kept.get("values")))}

        def apply_advice(kept: dict, request: gr.Request):
            """The advice's frames, fps and guidance into the form: only here, when the person asks."""
            values = (kept or {}).get("values") or {}
            if not values:
                raise refusal(StudioError("page.no_advice"), language(request), "advice")
            return {form[name]: value for name, value in values.items() if name in form}

        def show_template(name: str, chosen: str, request: gr.Request):
            """What the picked template does, for the model picked: shown, nothing set."""
            lang = language(request)
            if not name:
                return ""
            try:
                row = next((row for row in studio.templates(lang, chosen) if row["name"] == name), None)
            except Exception as exc:  # noqa: BLE001 - refusal() maps ours and logs the rest
                raise refusal(exc, lang, "template") from None
            if row is None:
                return ""
            guidance = note("page.template_guidance", value=row["guidance_scale"]) if row["guidance_scale"] else ""
            return studio.say(note("page.template_details", label=row["label"], camera=row["camera_motion"],
                                   intensity=row["motion_intensity"], seconds=row["seconds"], frames=row["num_frames"],
                                   model=studio.family(chosen).id, guidance=guidance), lang)  # fmt: skip

        def storyboard(request: gr.Request, *values):
            lang = language(request)
            try:
                board = studio.storyboard(dict(zip(form, values)), lang)
            except Exception as exc:  # noqa: BLE001 - refusal() maps ours and logs the rest
                raise refusal(exc, lang, "storyboard") from None
            if board.warning:
                warn(board.warning, lang)
            return {segments: "\n".join(board.segments), negative: board.negative_prompt, details: board.details}

        def use_my_words(text: str):
            return {refined: text or "", last_refine: {"for": text or "", "text": text or ""}}

        def on_capabilities(chosen: str, request: gr.Request):
            """The subjects for models that take references, the soundtrack for models that make no sound
            of their own; a section hidden is emptied (it would ask the model for what it cannot take),
            and a note says why it is not there. The advice was for the model before: it goes."""
            try:
                family = studio.family(chosen)
            except Exception as exc:  # noqa: BLE001 - refusal() maps ours and logs the rest
                raise refusal(exc, language(request), "model change") from None
            subjects_too, own_sound = family.references, family.audio
            shown_or_emptied = {} if subjects_too else {slot: None for slot in [*reference_files, *reference_labels]}
            return {subjects_box: gr.update(visible=subjects_too), subjects_note: gr.update(visible=not subjects_too),
                    soundtrack: gr.update(visible=not own_sound, **({"value": None} if own_sound else {})),
                    sound_note: gr.update(visible=own_sound), advice: {}, **shown_or_emptied}  # fmt: skip

        def show_subjects(*values):
            """The subjects' pictures (a clip plays), each captioned with its label."""
            files, labels = values[:REFERENCE_SLOTS], values[REFERENCE_SLOTS:]
            return [(path, (label or "").strip() or None) for path, label in zip(files, labels) if path]

        def on_interpolate(chosen: str, factor, request: gr.Request):
            """Picking x2 or x4 (the same duration at x fps) sets the fps to the model's own times it: the
            fps is the file's (i2v/checks.py), and at the model's own the picked interpolation would be
            timed away again."""
            try:
                return interpolated_fps(studio.family(chosen).fps, factor)
            except Exception as exc:  # noqa: BLE001 - refusal() maps ours and logs the rest
                raise refusal(exc, language(request), "interpolation") from None

        def fps_info(chosen: str, value, request: gr.Request):
            """Under the fps slider: the video's fps against the model's own (i2v/checks.py's rates): more
            is reached by interpolation, fewer by dropping frames; the camera engine renders any."""
            try:
                family = studio.family(chosen)
            except Exception:  # noqa: BLE001 - a model that cannot be read is refused by its own change event
                return gr.skip()
            code = "page.fps_own"
            if family.pipeline is None:
                code = "page.fps_rendered"
            elif isinstance(value, (int, float)) and value != family.fps:
                code = "page.fps_interpolated" if value > family.fps else "page.fps_fewer"
            return gr.update(info=studio.say(note(code, fps=value, model=family.id, own=family.fps), language(request)))

        def on_model_change(chosen: str, h, w, n, current_steps, chosen_speed, factor, request: gr.Request):
            """New bounds for `chosen`; the current values stay where the family allows them (so that
            applying a preset, which sets model and sizes together, keeps its sizes), else its defaults;
            the fps is the model's own, times the interpolation picked."""
            try:
                rules = studio.rules(chosen)
            except Exception as exc:  # noqa: BLE001 - refusal() maps ours and logs the rest
                raise refusal(exc, language(request), "model change") from None
            size, fixed = rules["size"], not rules["size"]["interactive"]

            def keep(value, default, low, high, grid, offset=0):
                ok = value is not None and low <= value <= high and (int(value) - offset) % grid == 0
                return value if ok and not fixed else default

            grid = rules["frame_step"]
            offset = rules["frame_min"] % grid if grid > 1 else 0
            if chosen_speed == "turbo" and rules["diffusion"]:  # the new model's distilled settings
                turbo = studio.speed_settings(chosen, "turbo")
                current_steps, rules = turbo["num_inference_steps"], {**rules, "guidance": turbo["guidance_scale"]}
            return {
                height: gr.update(value=keep(h, rules["height"], size["minimum"], size["maximum"], size["step"]), **size),
                width: gr.update(value=keep(w, rules["width"], size["minimum"], size["maximum"], size["step"]), **size),
                frames: gr.update(value=keep(n, rules["frames"], rules["frame_min"], rules["frame_max"], grid, offset),
                                  minimum=rules["frame_min"], maximum=rules["frame_max"], step=grid),
                fps: gr.update(value=interpolated_fps(rules["fps"], factor)),
                steps: gr.update(value=current_steps if rules["diffusion"] and current_steps else rules["steps"],
                                 interactive=rules["diffusion"]),
                guidance: gr.update(value=rules["guidance"], interactive=rules["diffusion"]),
                gpus: gr.update(interactive=rules["splits"]) if rules["splits"] else gr.update(value=1, interactive=False),
            }  # fmt: skip

        generate_inputs = [*form.values(), history, last_refine]

        async def generate(request: gr.Request, progress=gr.Progress(), *values):  # noqa: B008 - gradio's own idiom
            """Queue the job in the store and follow it: async, so that a page waiting for its video
            holds no thread (gradio's and the API's share one pool)."""
            lang = language(request)
            data, dropped = studio.segments_over_prompt(dict(zip(form, values)))
            if dropped:
                inform(studio.say(note("studio.segments_over_prompt"), lang), lang)
            past, last = values[len(form)], values[len(form) + 1]

            def on_progress(update) -> None:
                text = studio.progress_text(update, lang)
                if update.stage in ("denoising", "rendering"):
                    unit = note("studio.unit_steps" if update.stage == "denoising" else "studio.unit_frames")
                    progress((update.step, update.total), desc=text, unit=studio.say(unit, lang))
                else:
                    progress(None, desc=text)

            def on_change(job) -> None:  # waiting in the store's queue, then the worker's progress
                ahead = hosting.position(job)
                if job.status in ("queued", "interrupted") and ahead is not None:
                    progress(None, desc=studio.say(note("store.waiting", ahead=ahead) if ahead
                                                   else note("store.waiting_next"), lang))  # fmt: skip
                elif job.stage:
                    on_progress(Progress(job.stage, job.step or 0, job.total or 0, 0.0, job.eta))

            try:
                job = await asyncio.to_thread(hosting.submit, data, owner_of(request), lang,
                                              session=request.session_hash or "api", last_refine=last)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - refusal() maps ours and logs the rest
                raise refusal(exc, lang, "generate") from None
            job = await hosting.follow(job.id, on_change)
            if job is None:  # deleted by its owner from another client while it waited
                raise user_error(studio.say(note("studio.stopped"), lang), studio.say(note("studio.title_error"), lang))
            if job.status not in ENDED:  # the server is stopping: the job stays queued for its next start
                inform(studio.say(note("store.server_stopping"), lang), lang)
                return {params: {"stopped": True, "job": job.id, "status": "queued"}}
            if job.status == "failed":
                log.info("job %s failed: %s", job.id, job.error["text"])
                raise user_error(job.error["text"], studio.say(note("studio.title_error"), lang))
            result = job.result or {}
            for text in result.get("warnings", []):
                warn(text, lang)
            done = job.status == "done"
            for text in result.get("infos") or ([] if done else [studio.say(note("studio.stopped"), lang)]):
                inform(text, lang)  # a stopped job says so even when it has nothing else to say
            made = result.get("refined")
            out = {refined: result.get("prompt", data.get("prompt")), negative: result.get("negative_prompt", ""),
                   camera: result.get("camera_motion", "static"), details: made["details"] if made else gr.update(),
                   last_refine: made["last"] if made else last,
                   params: result.get("params") if done else {"stopped": True}}  # fmt: skip
            if made:  # refined first: its advice, shown as Refine shows it (applied only when asked)
                out[advice] = advice_of(made.get("advice"))
            past = hosting.history(owner_of(request)) if done else past  # the pick list and pictures follow it
            out.update({video: await asyncio.to_thread(shown, result["params"]["output_path"]) if done else None,
                        history: past,
                        table: {"headers": studio.history_headers(lang), "data": studio.history_rows(past)}})  # fmt: skip
            return out

        def slots_text(lang: str) -> str:
            """A line per device of the pool and what it does now."""
            return "\n\n".join(studio.say(line, lang) for line in slot_lines(hosting.pool.describe()))

        def refresh_panel(request: gr.Request, *values):
            lang = language(request)
            try:
                text, found = studio.panel(dict(zip(sizing, values)), lang)
                slots = slots_text(lang)
            except Exception as exc:  # noqa: BLE001 - refusal() maps ours and logs the rest
                raise refusal(exc, lang, "panel") from None
            # the studio's panel is its lines between blank lines, the hardware summary first: the
            # pool's devices go under the summary
            summary, _, plan = text.partition("\n\n")
            text = "\n\n".join(part for part in (summary, slots, plan) if part)
            return {gpu: text, actions: found, shown_slots: slots}

        def refresh_slots(shown: str, request: gr.Request, *values):
            """The timer's look at the pool: the panel again only when what a device does changed."""
            if slots_text(language(request)) == shown:
                return dict.fromkeys((gpu, actions, shown_slots), gr.skip())
            return refresh_panel(request, *values)

        def apply(kind: str):
            def fill(found: dict, chosen: str, chosen_speed: str, request: gr.Request):
                try:
                    values = studio.apply(kind, found, chosen, chosen_speed)
                except Exception as exc:  # noqa: BLE001
                    raise refusal(exc, language(request), "apply") from None
                return {form[name]: value for name, value in values.items()}

            return fill

        def stop(request: gr.Request) -> None:
            hosting.stop_session(request.session_hash or "api")

        def history_choices(past: list[dict], request: gr.Request, keep=None):
            """The pick list: the item picked before while it is still there, else the newest."""
            choices = studio.history_choices(past, language(request))
            keys = [key for _, key in choices]
            return gr.update(choices=choices, value=keep if keep in keys else (keys[-1] if keys else None))

        def load_from_history(past: list[dict], key, request: gr.Request):
            try:
                values = studio.from_history(past, key)
            except Exception as exc:  # noqa: BLE001
                raise refusal(exc, language(request), "load") from None
            item = studio.history_item(past, key)
            return {video: shown(item["output_path"]), params: item, **{form[name]: v for name, v in values.items()}}

        def run_batch(photos, prompts: str, request: gr.Request, *values):
            """Every photo with every prompt (one per line; none: the prompt box's words), each a job
            of the store with the form's settings; the history below follows them."""
            lang, data = language(request), dict(zip(form, values))
            lines = [line.strip() for line in (prompts or "").splitlines() if line.strip()] or [data.get("words") or ""]
            paths = [getattr(photo, "name", photo) for photo in photos or []]
            if not paths:
                raise refusal(StudioError("studio.no_photo"), lang, "batch")
            queued, refused = 0, None
            for path in paths:
                for line in lines:
                    job_form = {**data, "image": path, "words": line, "prompt": "" if data.get("auto_refine") else line}
                    job_form, _ = studio.segments_over_prompt(job_form)  # the segments box's prompts, as Generate
                    try:
                        hosting.submit(job_form, owner_of(request), lang, session=request.session_hash or "api")
                        queued += 1
                    except Exception as exc:  # noqa: BLE001 - said below, with what was queued before it
                        refused = studio.explain(exc, lang)
                        if refused is None:
                            raise refusal(exc, lang, "batch") from None
                        break
                if refused:
                    break
            text = studio.say(note("studio.batch_queued", queued=queued, total=len(paths) * len(lines)), lang)
            return {batch_note: text + (f"\n\n{refused}" if refused else ""), **load_history(request)}

        def refresh_history(past: list[dict], picked, request: gr.Request):
            """The timer's look at the store: new values only when a job of this person moved; the
            item picked stays picked."""
            if hosting.history(owner_of(request)) == past:  # the cheap look first: no pictures to copy
                return dict.fromkeys((history, table, history_pick, thumbs), gr.skip())
            return load_history(request, picked)

        def delete_from_history(past: list[dict], key, request: gr.Request):
            lang = language(request)
            try:
                item = studio.history_item(past, key)
                if hosting.delete(item["job"], owner_of(request)):  # queued or running: stopped, from any tab
                    inform(studio.say(note("store.stopping"), lang), lang)
            except Exception as exc:  # noqa: BLE001
                raise refusal(exc, lang, "delete") from None
            return load_history(request, key)

        def load_history(request: gr.Request, picked=None):
            """The jobs of whoever opened the page (the signed-in user's; with no sign-in, those made
            without one: not the API's token users'), across restarts and browsers, from the store."""
            past = hosting.history(owner_of(request))
            return {history: past, history_pick: history_choices(past, request, picked),
                    table: {"headers": studio.history_headers(language(request)), "data": studio.history_rows(past)},
                    thumbs: pictures(past)}  # fmt: skip

        def pictures(past: list[dict]) -> list[tuple[str, str]]:
            shown_items = []
            for item in pictured(past):
                try:
                    shown_items.append((shown(item["thumbnail"]), thumb_caption(item)))
                except OSError:  # removed meanwhile (another tab, the API, retention): no picture
                    continue
            return shown_items

        def history_changed(past: list[dict], request: gr.Request):
            """After a Generate: the pick list and the pictures follow the new history, the new video
            picked."""
            return {history_pick: history_choices(past, request), thumbs: pictures(past)}

        def pictured(past: list[dict]) -> list[dict]:
            """The history's finished videos that have a picture, newest first (the gallery's order)."""
            return [item for item in reversed(past) if item.get("thumbnail")]

        def thumb_caption(item: dict) -> str:
            return f"{item['time']} · {item['family']} · {item['seed']} · {item['prompt'][:40]}"

        def pick_thumbnail(past: list[dict], evt: gr.SelectData):
            """A click on a picture picks its video in the list below (play, load, delete)."""
            shown_items = pictured(past)
            if not 0 <= evt.index < len(shown_items):
                return gr.skip()
            return gr.update(value=shown_items[evt.index]["job"])

        # The API names /generate's values as they always were (its signature below); gradio reads them there.
        generate.__signature__ = inspect.Signature([
            *list(inspect.signature(generate).parameters.values())[:2],
            *(inspect.Parameter(API_NAMES.get(name, name), inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
              for name in [*form, "history", "last_refine"]),
        ])  # fmt: skip
        refine.__signature__ = inspect.Signature([
            list(inspect.signature(refine).parameters.values())[0],
            *(inspect.Parameter(API_NAMES.get(name, name), inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
              for name in refine_names),
        ])  # fmt: skip
        refine_button.click(refine, [form[name] for name in refine_names],
                            [refined, negative, camera, details, last_refine, advice],
                            api_name="refine", concurrency_id="llm", concurrency_limit=4)  # fmt: skip
        advice.change(show_advice, [advice], [advice_box, advice_button], api_name=False, queue=False)
        advice_button.click(apply_advice, [advice], [frames, fps, guidance], api_name=False, queue=False)
        for control in (template, model):
            control.change(show_template, [template, model], [template_details], api_name=False, queue=False)
        mine_button.click(use_my_words, [words], [refined, last_refine], api_name=False)
        storyboard.__signature__ = inspect.Signature([
            list(inspect.signature(storyboard).parameters.values())[0],
            *(inspect.Parameter(API_NAMES.get(name, name), inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
              for name in form),
        ])  # fmt: skip
        storyboard_button.click(storyboard, list(form.values()), [segments, negative, details], api_name="storyboard",
                                concurrency_id="llm", concurrency_limit=4)  # fmt: skip
        def on_speed_change(chosen: str, current_model: str, current_steps, current_guidance, request: gr.Request):
            """Turbo shows its distilled steps and guidance; leaving turbo gives the family's back."""
            try:
                values = studio.speed_settings(current_model, chosen, current_steps, current_guidance)
            except Exception as exc:  # noqa: BLE001 - refusal() maps ours and logs the rest
                raise refusal(exc, language(request), "speed change") from None
            return {steps: values["num_inference_steps"], guidance: values["guidance_scale"]}

        speed.input(on_speed_change, [speed, model, steps, guidance], [steps, guidance], api_name=False, queue=False)
        model.change(on_model_change, [model, height, width, frames, steps, speed, interpolate],
                     [height, width, frames, fps, steps, guidance, gpus], api_name=False)  # fmt: skip
        interpolate.input(on_interpolate, [model, interpolate], [fps], api_name=False, queue=False)
        model.change(on_capabilities, [model],
                     [subjects_box, subjects_note, soundtrack, sound_note, advice, *reference_files, *reference_labels],
                     api_name=False, queue=False)  # fmt: skip
        for control in (model, fps):
            control.change(fps_info, [model, fps], [fps], api_name=False, queue=False)
        demo.load(fps_info, [model, fps], [fps], api_name=False, queue=False)
        for control in [*reference_files, *reference_labels]:
            control.change(show_subjects, [*reference_files, *reference_labels], [subjects], api_name=False,
                           queue=False)  # fmt: skip
        panel_inputs = [form[name] for name in sizing]
        for control in panel_inputs:
            control.change(refresh_panel, panel_inputs, [gpu, actions, shown_slots], api_name=False, queue=False)
        demo.load(refresh_panel, panel_inputs, [gpu, actions, shown_slots], api_name=False, queue=False)
        history_views = [history, table, history_pick, thumbs]
        demo.load(load_history, None, history_views, api_name=False, queue=False)
        thumbs.select(pick_thumbnail, [history], [history_pick], api_name=False, queue=False)
        for button, kind in ((preset_button, "preset"), (plan_button, "plan"), (faster_button, "faster")):
            button.click(apply(kind), [actions, model, speed], panel_inputs, api_name=False, queue=False)
        dice.click(lambda: random.randint(0, MAX_SEED), None, [seed], api_name=False)
        generate_button.click(
            generate, generate_inputs,
            [video, params, history, table, refined, negative, camera, details, last_refine, advice],
            # No GPU work in gradio's queue: the function waits on the job store, whose pool of workers
            # runs every job (the page's, the API's, batch's) in order; the store bounds the queue.
            api_name="generate", concurrency_limit=None,
        )  # fmt: skip
        # No cancels=[...]: gradio would cancel the task (red "Error" on every output) and free the
        # GPU slot while the engine still runs; the flag stops the engine, and the job returns calmly.
        stop_button.click(stop, None, None, api_name="stop", queue=False)
        history.change(history_changed, [history], [history_pick, thumbs], api_name=False, queue=False)
        load_button.click(load_from_history, [history, history_pick], [video, params, *form.values()],
                          api_name=False, queue=False)  # fmt: skip
        delete_button.click(delete_from_history, [history, history_pick], history_views, api_name=False, queue=False)
        batch_button.click(run_batch, [batch_photos, batch_prompts, *form.values()], [batch_note, *history_views],
                           api_name=False)  # fmt: skip
        timer = gr.Timer(3.0)
        timer.tick(refresh_history, [history, history_pick], history_views, api_name=False, queue=False)
        timer.tick(refresh_slots, [shown_slots, *panel_inputs], [gpu, actions, shown_slots], api_name=False,
                   queue=False)  # fmt: skip
    demo.queue(default_concurrency_limit=1)
    return demo


def make_services(settings: Settings) -> Services:
    hosting = make_hosting(settings)
    return Services(hosting.studio, settings, hosting)


class Server:
    """The page and the REST API on one port, served by uvicorn; `close()` ends both and the pool."""

    def __init__(self, server, thread, hosting: Hosting):
        self._server, self._thread, self._hosting = server, thread, hosting

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        self._hosting.close()


def serve(demo: gr.Blocks, services: Services, *, block: bool = True) -> Server:
    """Hold the job store (a second server on the same output folder is refused), serve the REST API
    and the page on the settings' host and port, and run jobs once the port is ours (a port taken
    by something else must not cost a queued job an attempt)."""
    import asyncio
    import threading

    import uvicorn
    from fastapi import FastAPI

    from api import add_api

    settings, hosting = services.settings, services.hosting
    hosting.hold()
    app = FastAPI(title="i2v studio API", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    add_api(app, hosting, tokens=settings.api_token_pairs(), page_has_users=settings.auth is not None,
            max_upload_mb=settings.max_upload_mb)  # fmt: skip
    # gradio never serves the output folder (the job store, every user's photos and videos): the
    # page shows a video through a copy in its cache (`shown`), the API through an owner's route.
    app = gr.mount_gradio_app(
        app, demo, path="/", server_name=settings.host, server_port=settings.port, auth=settings.auth_pairs(),
        blocked_paths=[str(settings.output_dir)], i18n=I18N, footer_links=["api"], head=toast_titles(),
        show_error=True, ssr_mode=False,  # an unexpected failure still tells the person what broke
    )  # fmt: skip
    class Uvicorn(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)  # exits the process when the port cannot be had
            if self.started and not self.should_exit:
                hosting.begin()

        def handle_exit(self, sig, frame) -> None:  # Ctrl-C or SIGTERM: no job starts from here on
            hosting.pool.stop_soon()
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets=None) -> None:
            # The running job is queued again here: uvicorn raises the signal once more after
            # this, and the process ends then.
            await super().shutdown(sockets)
            await asyncio.to_thread(hosting.close)

    # Open pages keep a heartbeat stream: a stop waits for them 5 s at most, not forever.
    server = Uvicorn(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                                    timeout_graceful_shutdown=5))  # fmt: skip
    if settings.share:
        threading.Timer(3.0, _share, (settings,)).start()
    if block:
        try:
            server.run()
        finally:
            hosting.close()
        return Server(server, None, hosting)
    thread = threading.Thread(target=server.run, name="server", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.05)
    if not server.started:
        hosting.close()
        raise OSError(f"could not serve on {settings.host}:{settings.port}")
    return Server(server, thread, hosting)


def _share(settings: Settings) -> None:
    """A public gradio.live link to this server (I2V_SHARE), as gradio's own launch makes one."""
    import secrets

    from gradio import networking

    try:
        url = networking.setup_tunnel(settings.host, settings.port, secrets.token_urlsafe(32), None, None)
        print(f"i2v studio: public link {url}", flush=True)
    except Exception as exc:  # noqa: BLE001 - no link is no reason to stop the server
        log.warning("could not make a public share link: %s", exc)


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
    settings = load(**overrides)
    if settings is None:
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.api_tokens is not None and settings.auth is None:
        log.warning("I2V_API_TOKENS guard the REST API only: the page and its gradio API (/generate) stay open to "
                    "anyone who can reach this port; set I2V_AUTH to require a login there too")  # fmt: skip
    if settings.public and settings.auth is None:
        log.warning("listening on %s without I2V_AUTH: anyone who can reach this port can use the GPU",
                    "a public share link" if settings.share else settings.host)  # fmt: skip
    try:
        services = make_services(settings)
    except MessageError as exc:  # I2V_DEVICES naming a GPU that is not here, say
        print(f"error: {exc}", file=sys.stderr)
        return 2
    studio = services.studio
    log.info("%s", studio.hardware.summary(studio.engine.device))
    log.info("refiner: %s", f"{settings.llm_model} at {settings.openai_base_url}" if settings.llm_configured
             else "offline rules (no LLM endpoint set)")  # fmt: skip
    log.info("videos go to %s; the queue holds %d videos", settings.output_dir, settings.queue_size)
    demo = build_demo(services)
    print(f"i2v studio: open http://{'localhost' if settings.host in ('127.0.0.1', '0.0.0.0') else settings.host}"
          f":{settings.port}", flush=True)  # fmt: skip
    try:
        serve(demo, services)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # uvicorn raises Ctrl-C again once it has stopped: it stopped calmly
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
