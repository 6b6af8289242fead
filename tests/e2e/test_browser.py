"""The page in a real browser (Debian's chromium driven by playwright): upload, refine, edit,
generate with a tiny model, and watch the video play. Saves a screenshot to test-artifacts/."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import REPO

from studio.store import JobStore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); CI installs it", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


def test_refine_edit_generate_and_play(browser, app_url, chelsea):
    url, out = app_url
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1300})
    page.goto(url)
    page.locator("#photo input[type=file]").set_input_files(str(chelsea))
    page.locator("#prompt textarea").fill("镜头慢慢推近，猫转头")
    page.locator("#refine").click()
    page.wait_for_function("document.querySelector('#refined textarea').value.length > 0", timeout=30_000)
    refined = page.locator("#refined textarea")
    assert refined.input_value().startswith("镜头慢慢推近")
    assert "dolly_in" in page.locator("#refine-details").inner_text()
    refined.fill("A tabby cat turns its head. EDITED IN BROWSER")

    advanced(page)
    refined.blur()
    page.wait_for_timeout(1000)  # let the page send the edited values before the click reads them
    page.locator("#generate").click()

    page.wait_for_selector("#video video[src]", timeout=120_000)
    page.wait_for_function("document.querySelector('#video video').readyState >= 2", timeout=30_000)
    page.evaluate("document.querySelector('#video video').play()")
    page.wait_for_function("document.querySelector('#video video').currentTime > 0", timeout=10_000)
    params = "".join(page.locator("#params").inner_text().split())  # the JSON viewer puts tokens on lines
    assert "EDITEDINBROWSER" in params, params
    assert '"num_frames":9' in params and '"height":64' in params, params
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-generate.png"), full_page=True)

    # The session's history: Load puts that video's settings back into the form.
    refined.fill("something else entirely")
    page.locator("#load-history").click()  # the newest video is picked already
    page.wait_for_function(
        "document.querySelector('#refined textarea').value.includes('EDITED IN BROWSER')", timeout=15_000
    )
    assert page.locator("#height input[type=number]").input_value() == "64"
    page.close()

    # Another tab (a new session, as after a restart or on another browser) lists it from the job
    # store; Delete removes the video and its row.
    other = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1300})
    other.goto(url)
    other.wait_for_function("(document.querySelector('#history')?.innerText || '').includes('EDITED IN BROWSER')",
                            timeout=30_000)  # fmt: skip
    videos = sorted(out.glob("*.mp4"))
    other.locator("#delete-history").click()  # the newest is picked already
    other.wait_for_function("!(document.querySelector('#history')?.innerText || '').includes('EDITED IN BROWSER')",
                            timeout=30_000)  # fmt: skip
    assert len(sorted(out.glob("*.mp4"))) == len(videos) - 1
    other.close()


def set_slider(page, elem_id: str, value: str) -> None:
    box, track = page.locator(f"#{elem_id} input[type=number]"), page.locator(f"#{elem_id} input[type=range]")
    for _ in range(5):  # the accordion may still be settling: type until the slider itself has the value
        box.fill(value)
        box.press("Enter")
        box.blur()
        page.wait_for_timeout(200)
        if track.input_value() == value:
            return
    raise AssertionError(f"{elem_id} did not take {value}")


def advanced(page, height: str = "64", width: str = "64", frames: str = "9", steps: str = "2") -> None:
    """Open "Advanced settings" and set a video's size, frames and steps (small by default: seconds here)."""
    page.get_by_text("Advanced settings").click()
    page.locator("#height input[type=number]").wait_for(state="visible")
    for elem_id, value in (("height", height), ("width", width), ("frames", frames), ("steps", steps)):
        set_slider(page, elem_id, value)


def small_video_page(browser, url: str, photo, words: str):
    """A page with a photo and words, and a small video's settings (see `advanced`)."""
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1600})
    page.goto(url)
    page.locator("#photo input[type=file]").set_input_files(str(photo))
    page.locator("#prompt textarea").fill(words)
    advanced(page)
    return page


def body_has(page, text: str, timeout: int = 30_000) -> None:
    page.wait_for_function("t => document.body.innerText.includes(t)", arg=text, timeout=timeout)


def test_stop_is_calm(browser, app_url, chelsea):
    # Stop turned every output panel into a red "Error" badge; now it says it stopped, and no video.
    url, out = app_url
    before = sorted(out.iterdir())
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1300})
    page.goto(url)
    page.locator("#photo input[type=file]").set_input_files(str(chelsea))
    page.locator("#refined textarea").fill("a cat")
    advanced(page, "256", "256", "121", "100")  # ~15 s here
    page.wait_for_timeout(500)
    page.locator("#generate").click()
    body_has(page, "denoising: step", timeout=60_000)
    page.locator("#stop").click()
    body_has(page, "Stopped: no video was written.")
    page.wait_for_timeout(1000)
    assert "Error" not in page.locator("body").inner_text()
    assert page.locator("#video video[src]").count() == 0
    assert sorted(out.iterdir()) == before
    page.close()


def test_page_follows_the_browser_language(browser, app_url, chelsea):
    url, _ = app_url
    page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 1300})
    page.goto(url)
    page.wait_for_selector("#refine")
    assert page.locator("#refine").inner_text().strip() == "优化提示词"
    assert "未设置大模型接口" in page.locator("#no-llm").inner_text()
    # What the server says follows the page's language too: the panel, errors, refine details.
    body_has(page, "仅 CPU")
    page.get_by_text("高级设置").click()
    assert page.locator("#dice").inner_text().strip() == "随机种子"  # no emoji a font may lack
    page.locator("#generate").click()  # no photo yet
    body_has(page, "请先上传照片")
    page.wait_for_function("[...document.querySelectorAll('.toast-title')].some(e => e.innerText.includes('错误'))",
                           timeout=10_000)  # gradio's own toast title, in the page's language too
    page.locator("#photo input[type=file]").set_input_files(str(chelsea))
    page.locator("#prompt textarea").fill("火箭升空，镜头推近")
    page.locator("#refine").click()
    page.wait_for_function("document.querySelector('#refine-details').innerText.includes('镜头')", timeout=30_000)
    details = page.locator("#refine-details").inner_text()
    assert "未翻译" in details and "rocket" in details and "Camera" not in details
    headers = page.locator("#history").inner_text()
    assert "时间" in headers and "模型" in headers
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-zh.png"), full_page=True)
    page.close()


def test_a_batch_of_photos_and_prompts_is_queued_and_followed_in_the_history(browser, app_url, chelsea, tmp_path):
    url, out = app_url
    second = tmp_path / "second.jpg"
    shutil.copyfile(chelsea, second)
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1600})
    page.goto(url)
    advanced(page)
    page.get_by_text("Batch: several photos x prompts").click()
    page.locator("#batch-photos input[type=file]").set_input_files([str(chelsea), str(second)])
    page.locator("#batch-prompts textarea").fill("BATCH ONE the cat yawns")  # 2 jobs: the fixture's queue holds 2
    page.locator("#batch-prompts textarea").blur()
    page.wait_for_timeout(1000)
    videos = len(list(out.glob("*.mp4")))
    store = JobStore(out)  # the fixture's queue holds 2: wait for it to be empty
    deadline = time.monotonic() + 120
    while store.counts()["queued"] + store.counts()["running"] and time.monotonic() < deadline:
        time.sleep(0.5)
    store.close()
    page.locator("#batch-go").click()
    body_has(page, "Queued 2 of 2 jobs")
    # the history follows them (a timer reads the store) until both are done
    page.wait_for_function("((document.querySelector('#history')?.innerText || '').match(/BATCH ONE/g) || []).length"
                           " == 2 && !/queued|running/.test(document.querySelector('#history').innerText)",
                           timeout=240_000)  # fmt: skip
    assert len(list(out.glob("*.mp4"))) == videos + 2
    page.close()


def test_the_history_shows_a_picture_of_each_video_and_a_click_picks_it(browser, app_url):
    url, out = app_url
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1300})
    page.goto(url)
    # the earlier tests made videos: each has its first frame as a picture
    page.wait_for_selector("#history-thumbs img", timeout=30_000)
    pictures = page.locator("#history-thumbs img")
    assert pictures.count() >= 1
    first = page.locator("#history-pick input").input_value()
    pictures.last.click()  # the oldest picture
    page.wait_for_function("v => document.querySelector('#history-pick input').value !== v", arg=first,
                           timeout=15_000)  # fmt: skip
    page.close()


def test_a_long_interpolated_video_from_the_segments_box(browser, app_url, chelsea):
    """The page's long-video controls end to end (the storyboard button's event is tested through
    gradio's client in tests/test_app.py, which fills this same box)."""
    page = small_video_page(browser, app_url[0], chelsea, "猫转头")
    page.get_by_text("Longer and smoother").click()
    segments = page.locator("#segments textarea")
    segments.wait_for(state="visible")
    segments.fill("a cat looks up\nthe cat turns its head EDITED")
    page.locator("#interpolate").get_by_text("x2").click()  # the fps follows: the model's 24, twice
    page.wait_for_function("document.querySelector('#fps input[type=number]').value === '48'", timeout=10_000)
    segments.blur()
    page.wait_for_timeout(1000)
    page.locator("#generate").click()
    page.wait_for_selector("#video video[src]", timeout=120_000)
    page.wait_for_function("document.querySelector('#params').innerText.includes('EDITED')", timeout=30_000)
    params = "".join(page.locator("#params").inner_text().split())
    # 9 + 8 frames (the join once), interpolated x2: 33 frames at 48 fps
    assert '"num_frames":33' in params and '"fps":48' in params and '"segment_frames":9' in params, params
    assert "Stopped" not in page.locator("body").inner_text()  # a made video is never called stopped
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-long-video.png"), full_page=True)
    page.close()


def test_a_template_its_advice_and_a_soundtrack_the_video_plays(browser, app_url, chelsea, tmp_path):
    """Issue 15 on the page: a motion template shows what it does and sets nothing; Refine shows the
    advice beside the prompt and only its button applies it; a soundtrack is heard in the player."""
    import wave

    import numpy as np

    tone = tmp_path / "tone.wav"
    with wave.open(str(tone), "wb") as file:
        file.setnchannels(1), file.setsampwidth(2), file.setframerate(16000)
        file.writeframes((np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 12000).astype("<i2").tobytes())
    page = small_video_page(browser, app_url[0], chelsea, "猫转头")

    page.get_by_text("Style and motion").click()
    page.locator("#template input").click()
    page.get_by_role("option", name="Dance").click()
    page.wait_for_function("document.querySelector('#template-details').innerText.includes('Dance')", timeout=10_000)
    assert "121 frames on wan2.2-ti2v-5b, guidance 5.5" in page.locator("#template-details").inner_text()
    page.locator("#refine").click()
    page.wait_for_function("document.querySelector('#advice').innerText.includes('121 frames')", timeout=30_000)
    assert "dances" in page.locator("#refined textarea").input_value()
    value = "document.querySelector('#{} input[type=number]').value"
    assert page.evaluate(value.format("frames")) == "9" and page.evaluate(value.format("guidance")) == "5"  # unasked
    page.locator("#apply-advice").click()
    page.wait_for_function(f"{value.format('frames')} === '121' && {value.format('guidance')} === '5.5'",
                           timeout=10_000)  # fmt: skip
    set_slider(page, "frames", "9")  # a quick video for the sound

    page.get_by_text("Subjects and sound").click()
    page.locator("#no-subjects").wait_for(state="visible")  # this model takes no subjects: said, no slots
    assert not page.locator("#reference-1").is_visible()
    page.locator("#soundtrack input[type=file]").set_input_files(str(tone))
    page.wait_for_selector("#soundtrack audio", state="attached", timeout=15_000)  # uploaded: the player shows it
    page.wait_for_timeout(500)
    page.locator("#generate").click()  # a click: the page may play sound from here on, as a person's would
    page.wait_for_selector("#video video[src]", timeout=120_000)
    page.wait_for_function("document.querySelector('#params').innerText.includes('soundtrack')", timeout=30_000)
    params = "".join(page.locator("#params").inner_text().split())
    assert '"has_audio":true' in params and '"audio":"soundtrack"' in params, params
    page.evaluate("document.querySelector('#video video').play()")
    page.wait_for_function("(v => v.currentTime > 0.2 && v.webkitAudioDecodedByteCount > 0)"
                           "(document.querySelector('#video video'))", timeout=15_000)  # fmt: skip
    assert page.evaluate("(v => !v.muted && v.volume > 0)(document.querySelector('#video video'))")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-issue-15.png"), full_page=True)
    page.close()
