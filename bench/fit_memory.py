"""Fit the memory planner's estimator to the measured runs and write configs/memory.toml.

Model, per family and per strategy (none, model, group, sequential), in GB, fitted on that strategy's runs:
  encode  peak = a * MPf + b * MPv + c     MPf = height * width / 1e6 (one frame), MPv = MPf * num_frames
  denoise peak = a * ktok + b               ktok = latent_frames * (h / spatial) * (w / spatial) / 1e3
  decode  peak = a * MPf + b * MPv + c      untiled (causal VAEs grow with the frame, LTX's with the video)
  decode  peak with VAE tiling = the measured constant (tiles have a fixed size); the same for encode
  run peak = the largest of the three
Where a strategy's runs cannot tell the per-frame and per-video terms apart (one frame count, or
one frame area), only the one they can tell is fitted (see frame_features).
Negative slopes (noise) are refitted away, and the constant is then raised so that no measured
run is above its fit: the estimate errs on the safe side. Seconds per step = c1 * ktok + c2 * ktok^2
all on the GPU; with offload k times that plus c seconds of copies (k >= 1, per strategy); plus a
measured overhead per run and strategy (the first step moves weights in); the decode's seconds are
a line in MPv per strategy (with VAE tiling: that line scaled to the tiled run).
Long-video families (WINDOW) denoise one window at a time: their ktok is one window's (plus
FramePack's packed history) and their steps are every window's. They keep the clip made so far on
the GPU (SkyReels its latents, FramePack its decoded frames), so their denoise peak is
a * ktok + held_clip * MPv + b, and their tiled decode the measured constant plus the same held
clip; what each window after the first costs beyond its steps is a measured overhead per window.
Encode and decode stay lines in the clip's size (bench/long_families.py measures them).
Seconds are an H200's, as the planner's are: runs on another GPU are divided by presets.toml's
speed factor for it (an H100's by 1.06).

    python bench/fit_memory.py bench/results/memory_h200_*.jsonl bench/results/long_families_sizes_h100.jsonl \
        bench/results/long_families_offload_h100.jsonl bench/results/ltx_video_long_h100.jsonl \
        bench/results/issue15_families_h100.jsonl bench/results/memory_h100_vace.jsonl \
        bench/results/memory_h100_ltx2.jsonl > configs/memory.toml   (later files win)
"""

import json
import sys
import textwrap
from collections import defaultdict

import numpy as np

from i2v.memory import denoised_ktokens, speed_factor, windows  # the estimator's own size axis and time base

LATENT = {  # (spatial, temporal): how many pixels and frames make one latent token (VAE x patch)
    "ltx-video": (32, 8),
    "wan2.2-ti2v-5b": (32, 4),
    "wan2.1-i2v-14b-480p": (16, 4),
    "wan2.2-i2v-a14b": (16, 4),
    "cogvideox-5b-i2v": (16, 4),
    "hunyuanvideo-i2v": (16, 4),
    "svd-xt": (8, 1),  # UNets: one latent pixel per 8x8 pixels of each frame
    "i2vgen-xl": (8, 1),
}
# Long-video families: the denoiser sees one window at a time (i2v/memory.py `windows`,
# `denoised_ktokens`; tests/test_memory.py checks them against the family rooms).
LATENT |= {
    "framepack": (16, 4),  # HunyuanVideo's VAE (8x, 4x) and patch 2
    "skyreels-v2-df-1.3b-540p": (16, 4),  # Wan's VAE (8x, 4x) and patch 2
    "skyreels-v2-df-14b-540p": (16, 4),
    "ltx-video-long": (32, 8),  # LTX's VAE (32x, 8x), patch 1
}
# Reference and sound families (issue 15), one call each: Wan 2.1 VACE (Wan's VAE and patch 2; the two
# references bench/measure_memory.py gives it are in every run) and LTX-2 (its video VAE is LTX's).
LATENT |= {"wan-vace-1.3b": (16, 4), "wan-vace-14b": (16, 4), "ltx-2": (32, 8)}
WINDOW = {
    # A section: latent_window_size (9) latent frames plus the photo's as clean context (37 frames
    # count 10 latent frames); each next section adds 36 frames. The rest of its context, as
    # pipeline_hunyuan_video_framepack.py packs the history: 1 latent frame at full size, 2 through
    # 2x4x4 patches (1 frame of 1/4 the tokens) and 16 through 4x8x8 (4 frames of 1/16): 1.5 frames.
    "framepack": {"frames": 37, "stride": 36, "context": 1.5},
    # base_num_frames 97, overlap_history 17: each next window adds 80 frames (models.toml).
    "skyreels-v2-df-1.3b-540p": {"frames": 97, "stride": 80},
    "skyreels-v2-df-14b-540p": {"frames": 97, "stride": 80},
    # temporal_tile_size 80, temporal_overlap 24: a window of 10 latent frames, each next 7 (56 frames) on
    "ltx-video-long": {"frames": 80, "stride": 56},
}
PHASES = ("encode", "denoise", "decode")
SECONDS = ("seconds_per_step", "first_step_seconds", "decode_seconds", "denoise_seconds")  # scaled to an H200's


def ktokens(family: str, h: int, w: int, f: int) -> float:
    spatial, temporal = LATENT[family]
    return denoised_ktokens(h, w, f, {"spatial": spatial, "temporal": temporal}, WINDOW.get(family))


def mpx(h: int, w: int, f: int) -> float:
    return h * w * f / 1e6


def line(xs, ys) -> tuple[float, float]:
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if len(set(xs.tolist())) < 2:
        return 0.0, float(ys.max())
    a, b = np.polyfit(xs, ys, 1)
    if a < 0:  # noise on a flat line: keep it flat at the worst case
        return 0.0, float(ys.max())
    return float(a), float(b)


def fit_phase(points: list[tuple[list[float], float]]) -> list[float]:
    """Least squares on the features, slopes kept >= 0, then shifted up to cover every point."""
    features = np.array([p[0] + [1.0] for p in points])
    ys = np.array([p[1] for p in points])
    keep = list(range(features.shape[1]))
    while True:
        coef = np.zeros(features.shape[1])
        coef[keep] = np.linalg.lstsq(features[:, keep], ys, rcond=None)[0]
        negative = [i for i in keep[:-1] if coef[i] < 0]
        if not negative:
            break
        keep.remove(negative[0])
    coef[-1] += max(0.0, float(np.max(ys - features @ coef)))
    return [round(float(c), 5) for c in coef]


def frame_features(runs: list[dict]):
    """[MPf, MPv] of a run, with a column zeroed where the runs cannot tell it apart from the other:
    all runs with one frame count make MPv a multiple of MPf (per-video growth unknown: keep the
    per-frame term); all with about one frame area make MPf a constant (keep the per-video term)."""
    frames = {r["num_frames"] for r in runs}
    areas = [r["height"] * r["width"] for r in runs]
    drop_frame = len(frames) > 1 and max(areas) / min(areas) < 1.05
    keep_video = len(frames) > 1

    def features(r):
        mpf = r["height"] * r["width"] / 1e6
        return [0.0 if drop_frame else mpf, mpf * r["num_frames"] if keep_video else 0.0]

    return features


def fit(family: str, weights: dict, runs: list[dict], speed: float = 1.0) -> dict:
    """The family's profile from its runs; `speed`: how many times an H200's seconds they took."""
    ok = [{**r, **{k: r[k] / speed for k in SECONDS if k in r}} for r in runs if r.get("ok")]
    size = lambda r: (r["height"], r["width"], r["num_frames"])  # noqa: E731
    window = WINDOW.get(family)
    peaks, decode = {}, {}
    for strategy in sorted({r["strategy"] for r in ok}):
        chosen = [r for r in ok if r["strategy"] == strategy]
        untiled = [r for r in chosen if not r["tiling"]]
        tiled = [r for r in chosen if r["tiling"]]
        frame = frame_features(untiled)  # what this strategy's runs can tell apart
        peaks[strategy] = {
            "encode": fit_phase([(frame(r), r["encode_peak_gb"]) for r in untiled]),  # tiling also shrinks encode
            "denoise": fit_phase([([ktokens(family, *size(r))], r["denoise_peak_gb"]) for r in chosen]),
            "decode": fit_phase([(frame(r), r["decode_peak_gb"]) for r in untiled]),
            "decode_tiled": round(max([r["decode_peak_gb"] for r in tiled], default=0.0), 3),
            "encode_tiled": round(max([r["encode_peak_gb"] for r in tiled], default=0.0), 3),
        }
        if window:  # a window family keeps the clip made so far on the GPU while it denoises the next window
            # runs of one window size (one area) cannot tell the window's slope from the constant: keep it flat
            one_window = len({ktokens(family, *size(r)) for r in chosen}) < 2
            ktok_a, held, base = fit_phase([([0.0 if one_window else ktokens(family, *size(r)), mpx(*size(r))],
                                             r["denoise_peak_gb"]) for r in chosen])  # fmt: skip
            peaks[strategy]["denoise"], peaks[strategy]["held_clip"] = [ktok_a, base], held
            if tiled:  # and while it decodes in tiles: the tiled decode is that measured, less the clip then held
                tiled_decode = max(r["decode_peak_gb"] - held * mpx(*size(r)) for r in tiled)
                peaks[strategy]["decode_tiled"] = round(tiled_decode, 3)
        # The decode's seconds, a line in MPv: offload slows it (model offload moves the denoiser
        # out and the VAE in; sequential offload moves the VAE's weights in for every layer, and with
        # tiling for every tile: Wan 2.2 5B's tiled decode took 10x its untiled one). Tiled runs are
        # at one size: there the strategy's untiled line is scaled to the measurement.
        a, b = decode[strategy] = line([mpx(*size(r)) for r in untiled], [r["decode_seconds"] for r in untiled])
        if tiled:
            k = float(np.mean([r["decode_seconds"] / (a * mpx(*size(r)) + b) for r in tiled]))
            decode[strategy + "_tiled"] = (a * k, b * k)
    none = [r for r in ok if r["strategy"] == "none" and not r["tiling"]]
    ks = np.array([ktokens(family, *size(r)) for r in none])
    secs = np.array([r["seconds_per_step"] for r in none])
    c1, c2 = np.linalg.lstsq(np.stack([ks, ks**2], 1), secs, rcond=None)[0]
    if window and c2 < 0:  # few window sizes: a falling square would turn negative past them; a line through 0
        c1, c2 = float(np.dot(ks, secs) / np.dot(ks, ks)), 0.0
    step = lambda r: c1 * ktokens(family, *size(r)) + c2 * ktokens(family, *size(r)) ** 2  # noqa: E731
    # A step with offload: k times the step all on the GPU (streams hide part of the copies) plus
    # c seconds of copies that do not shrink with the video (sequential offload moves every weight
    # in, every step): a line per strategy. Per run, once: what the first step costs beyond a step
    # (offload moves the denoiser in). With two experts under model offload, the timed steps also
    # hold the one swap of experts that a run pays once, so there the swap goes to the per-run overhead.
    speed, overhead, per_window = {}, {}, {}
    for strategy in peaks:
        chosen = [r for r in ok if r["strategy"] == strategy]
        if strategy == "model" and "transformer_2" in weights:
            speed[strategy] = (1.0, 0.0)
            swap = [r["seconds_per_step"] - step(r) for r in chosen]
        else:
            xs, ys = [step(r) for r in chosen], [r["seconds_per_step"] for r in chosen]
            k, c = line(xs, ys)
            if c < 0:  # no fixed cost to see: a factor
                k, c = float(np.mean(np.divide(ys, xs))), 0.0
            if k < 1:  # a step with offload is no faster than the step all on the GPU: a fixed cost
                k, c = 1.0, max(0.0, float(np.mean(np.subtract(ys, xs))))
            speed[strategy] = (round(k, 3), round(c, 3))
            swap = [0.0]
        k, c = speed[strategy]
        first = [r["first_step_seconds"] - (step(r) * k + c) for r in chosen]
        overhead[strategy] = round(max(0.0, float(np.mean(first) + np.mean(swap))), 1)
        if window:  # the denoising beyond every window's steps and the run's overhead, per window after the first
            more = [(r["denoise_seconds"] - windows(r["num_frames"], window) * r["steps"] * (step(r) * k + c)
                     - overhead[strategy]) / (windows(r["num_frames"], window) - 1)
                    for r in chosen if windows(r["num_frames"], window) > 1]  # fmt: skip
            per_window[strategy] = round(max(0.0, float(np.mean(more))), 1) if more else 0.0
    return dict(
        source="measured",
        latent={"spatial": LATENT[family][0], "temporal": LATENT[family][1]},
        **({"window": window} if window else {}),
        weights_gb={k: round(v, 3) for k, v in weights.items()},
        peak_gb=peaks,
        seconds_per_step=[round(float(c1), 6), round(float(c2), 8)],
        strategy_speed={s: list(kc) for s, kc in speed.items()},
        run_overhead_seconds=overhead,
        **({"window_overhead_seconds": per_window} if window else {}),
        decode_seconds={way: [round(v, 4) for v in ab] for way, ab in decode.items()},
    )


def load_runs(paths) -> tuple[dict, dict, dict]:
    """(weights per family, runs per family, device per family: the GPU, torch and the date) from
    result files; a later file's run of the same case replaces an earlier one (a re-measurement)."""
    weights, runs, device = {}, defaultdict(list), {}
    for path in paths:
        for line_ in open(path, encoding="utf-8"):
            row = json.loads(line_)
            if row.get("kind") == "weights":
                weights[row["family"]] = row["weights_gb"]
                # The first files (H200, 2026-11-21) predate the date in the row.
                device[row["family"]] = {"device": row["device"], "torch": row["torch"],
                                         "date": row.get("date", "2026-11-21")}  # fmt: skip
            else:
                key = (row["strategy"], row["height"], row["width"], row["num_frames"], row["tiling"])
                runs[row["family"]] = [r for r in runs[row["family"]] if
                                       (r["strategy"], r["height"], r["width"], r["num_frames"], r["tiling"]) != key]
                runs[row["family"]].append(row)
    return weights, runs, device


def main(paths: list[str]) -> None:
    weights, runs, device = load_runs(paths)
    print("# The memory planner's estimator: written by bench/fit_memory.py from bench/results/*.jsonl,")
    print("# which bench/measure_memory.py (long-video families: bench/long_families.py) measured on one")
    print("# GPU with real-size random-weight pipelines; seconds are an H200's (presets.toml's speed factors).")
    where = defaultdict(list)
    for family in sorted(runs):
        where[tuple(device[family].values())].append(family)
    for (gpu, torch, date), families in where.items():
        which = "" if len(where) == 1 else f": {', '.join(families)}"
        said = f"# Measured on {gpu} (torch {torch}, diffusers 0.42.1), {date}{which}."
        print("\n#   ".join(textwrap.wrap(said, 96)))
    print("# Do not edit by hand: re-measure and re-fit. See docs/PERFORMANCE.md for the method.\n")
    for family in sorted(runs):
        entry = fit(family, weights[family], runs[family], speed_factor(device[family]["device"]))
        print(f'[families."{family}"]')
        for key, value in entry.items():
            print(f"{key} = {_toml(value)}")
        print()


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


if __name__ == "__main__":
    main(sys.argv[1:])
