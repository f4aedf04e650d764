"""The README's two pictures of `deid review` (docs/images/review.jpg, review-approved.jpg), on the bundled sample
(NASA's public-domain astronaut): the detector is told to miss her face, a box is drawn round it in the page and
carried through the clip, the clip is rendered again with the correction, and approved.

    python scripts/make_review_screenshots.py   # needs Debian's chromium and chromium-driver (make install)
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import imageio_ffmpeg
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_videos" / "astronaut_pan.mp4"
OUT = ROOT / "docs" / "images"


def deid(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "deidcli", *args, "-q"], check=True)


def save(png: Path, name: str) -> None:
    image = Image.open(png).convert("RGB")
    image.thumbnail((1400, 1400))
    image.save(OUT / name, quality=80, optimize=True)
    print(OUT / name)


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from deidcli.detections_io import detections_path
    from deidcli.review.server import ReviewServer
    from deidcli.review.session import ReviewSession

    work = Path(tempfile.mkdtemp())
    clip, out = work / "astronaut.mp4", work / "astronaut_anonymized.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(SAMPLE), "-frames:v", "30",
                    "-c:v", "libx264", "-crf", "18", "-an", str(clip)], check=True)
    deid("run", str(clip), "--keep-detections")
    dets = detections_path(out)
    lines = dets.read_text().splitlines()
    frames = [json.loads(line) for line in lines[1:]]
    drawn = frames[5]["detections"][0]["box"]
    for f in frames:  # the detector "missed" her
        f["detections"] = []
    dets.write_text("\n".join([lines[0]] + [json.dumps(f) for f in frames]) + "\n")
    deid("run", str(clip), "-o", str(out), "--detections", str(dets), "--overwrite")

    session = ReviewSession(clip, out, dets, {"face": "frost"})
    server = ReviewServer(session)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,900"):
        opts.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)
    try:
        browser.get(server.url)
        body = browser.find_element(By.TAG_NAME, "body")
        wait = WebDriverWait(browser, 120)
        wait.until(lambda _: body.get_attribute("data-frame") == "0")
        browser.find_element(By.ID, "frameno").clear()
        browser.find_element(By.ID, "frameno").send_keys("5\n")
        wait.until(lambda _: body.get_attribute("data-frame") == "5")
        overlay = browser.find_element(By.ID, "overlay")
        s = overlay.size["width"] / session.width
        x1, y1, x2, y2 = (v * s for v in drawn)
        cx, cy = overlay.size["width"] / 2, overlay.size["height"] / 2
        browser.find_element(By.ID, "draw").click()
        (ActionChains(browser).move_to_element_with_offset(overlay, round(x1 - cx), round(y1 - cy)).click_and_hold()
         .move_by_offset(round(x2 - x1), round(y2 - y1)).release().perform())
        wait.until(lambda _: body.get_attribute("data-edits") == "1")
        browser.save_screenshot(str(work / "added.png"))
        save(work / "added.png", "review.jpg")
        deid(*shlex.split(session.rerender_command())[1:])
        browser.refresh()
        body = browser.find_element(By.TAG_NAME, "body")
        wait.until(lambda _: body.get_attribute("data-frame") == "0")
        browser.find_element(By.ID, "approve").click()
        wait.until(lambda _: body.get_attribute("data-approved") == "yes")
        browser.save_screenshot(str(work / "approved.png"))
        save(work / "approved.png", "review-approved.jpg")
    finally:
        browser.quit()
        server.shutdown()
        session.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
