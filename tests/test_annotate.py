"""`dialpref next annotate`: a real server on 127.0.0.1 (the CLI in its own process), driven over HTTP and by a
real headless Chromium; answers by click and by key land in the CSV in terms of the systems, blind to the
side they were shown on, and `next eval --human` reads them (judge agreement, kappa, leave-one-out)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dialpref.evaluate.next_utterance import human_report, leave_one_out
from dialpref.next_utterance.annotate import read_answers, shown_order, verdict_of

HOSTILE = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'


def write_inputs(tmp_path: Path, n: int = 6) -> tuple[Path, Path, Path]:
    samples, a, b = tmp_path / "samples.jsonl", tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    rows = [{"id": f"s{i}", "dialogue_id": f"d{i}", "target": f"real next turn {i}",
             "context": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "answer"}]}
            for i in range(n)]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path, name in ((a, "system-A"), (b, "system-B")):
        preds = [{"sample_id": f"s{i}", "predictions": [f"{name} says {i}", HOSTILE if i == 0 else "more"]}
                 for i in range(n)]
        path.write_text("".join(json.dumps(p) + "\n" for p in preds))
    return samples, a, b


class Annotate:
    """`dialpref next annotate` on a free port, as a user starts it."""

    def __init__(self, tmp_path: Path, output: Path) -> None:
        samples, a, b = write_inputs(tmp_path)
        self.proc = subprocess.Popen([sys.executable, "-m", "dialpref.cli", "next", "annotate", "--samples", str(samples),
                                      "--a", str(a), "--b", str(b), "--output", str(output), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "COLUMNS": "200"})
        line = self.proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, line + self.proc.stdout.read() if self.proc.poll() is not None else line
        self.url = found.group(0)
        self.banner = line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture
def server(tmp_path):
    started = Annotate(tmp_path, tmp_path / "human.csv")
    yield started
    started.stop()


def test_http_answers_resume_and_bad_requests(server, tmp_path):
    http = httpx.Client(base_url=server.url, timeout=10)
    first = http.get("/api/next", params={"annotator": "ann"}).json()
    assert first["sample_id"] == "s0" and first["progress"] == {"done": 0, "total": 6}
    left = first["left"]["predictions"][0]
    assert left.startswith("system-A" if shown_order("s0", "ann") == "A,B" else "system-B")  # the drawn side
    assert http.post("/api/answer", json={"sample_id": "s0", "annotator": "ann", "choice": "left"}).json()["written"]
    again = http.post("/api/answer", json={"sample_id": "s0", "annotator": "ann", "choice": "right"}).json()
    assert not again["written"] and again["sample_id"] == "s1"  # a double press writes nothing
    bad = [("/api/answer", {"sample_id": "s1", "annotator": "ann", "choice": "up"}),
           ("/api/answer", {"sample_id": "s1", "annotator": "<script>", "choice": "tie"}),
           ("/api/answer", {"sample_id": "s1", "annotator": "ann", "choice": "tie", "extra": 1}),
           ("/api/answer", {"sample_id": "nope", "annotator": "ann", "choice": "tie"})]
    assert [http.post(url, json=body).status_code for url, body in bad] == [422, 422, 422, 404]
    assert http.post("/api/answer", content=b"{not json", headers={"content-type": "application/json"}).status_code \
        == 422
    assert http.get("/api/next").status_code == 422 and http.get("/healthz").json()["samples"] == 6
    rows = list(csv.DictReader((tmp_path / "human.csv").open()))
    assert [(r["sample_id"], r["annotator"], r["verdict"]) for r in rows] == [
        ("s0", "ann", verdict_of("left", shown_order("s0", "ann")))]
    assert rows[0]["shown_order"] == shown_order("s0", "ann") and rows[0]["timestamp"]
    server.stop()
    restarted = Annotate(tmp_path, tmp_path / "human.csv")  # the same CSV: it resumes
    try:
        assert "1 answers already" in restarted.banner
        assert httpx.get(restarted.url + "/api/next", params={"annotator": "ann"}).json()["sample_id"] == "s1"
        assert httpx.get(restarted.url + "/api/next", params={"annotator": "other"}).json()["sample_id"] == "s0"
    finally:
        restarted.stop()
    server.proc = restarted.proc  # already stopped; the fixture's stop is a no-op wait


def test_sides_are_blind_and_verdicts_name_systems():
    orders = {shown_order(f"s{i}", "ann") for i in range(40)}
    assert orders == {"A,B", "B,A"}  # both orders occur
    assert shown_order("s3", "ann") == shown_order("s3", "ann")  # fixed per sample and annotator
    assert verdict_of("left", "B,A") == "B" and verdict_of("right", "B,A") == "A"
    assert verdict_of("both_bad", "A,B") == "both_bad"


def test_leave_one_out_and_the_judge_against_the_majority():
    rows = [{"sample_id": s, "annotator": a, "verdict": v} for s, a, v in [
        ("s1", "x", "A"), ("s1", "y", "A"), ("s1", "z", "B"),
        ("s2", "x", "B"), ("s2", "y", "B"), ("s2", "z", "B"),
        ("s3", "x", "tie"), ("s3", "y", "both_bad"), ("s3", "z", "both_bad")]]
    loo = leave_one_out(rows)
    # x: s1 others {A,B} split -> skipped; s2 B==B; s3 others both_bad != tie -> 1/2
    assert loo["per_annotator"]["x"] == {"samples": 2, "agreement": 0.5}
    assert loo["per_annotator"]["z"] == {"samples": 2, "agreement": 0.5}  # s1 A != B, s2 B, s3 others split
    assert loo["per_annotator"]["y"] == {"samples": 1, "agreement": 1.0}
    report = human_report({"s1": "A", "s2": "B", "s3": "tie"}, rows)
    assert report["judge"]["agreement"] == 1.0 and report["leave_one_out"]["annotators"] == 3  # both bad = tie


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    if not chromium or not driver:
        pytest.skip("no Chromium and chromedriver on this machine (Debian: apt install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)


def test_a_real_browser_answers_five_by_click_and_by_key(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(server.url)
        wait = WebDriverWait(browser, 15)
        browser.find_element(By.ID, "annotator").send_keys("tester")
        browser.find_element(By.ID, "start").click()
        shown = []

        def sample_changed(_):
            task = browser.find_element(By.ID, "task")
            return task.is_displayed() and task.get_attribute("data-sample") not in shown

        for i, action in enumerate(["click:left", "click:right", "click:tie", "key:a", "key:x"]):
            wait.until(sample_changed)
            sample = browser.find_element(By.ID, "task").get_attribute("data-sample")
            assert "real next turn" in browser.find_element(By.ID, "reference").text
            assert f"{i} / 6 answered" in browser.find_element(By.ID, "progress").text
            shown.append(sample)
            kind, what = action.split(":")
            if kind == "click":
                browser.find_element(By.ID, f"choose-{what}").click()
            else:
                browser.find_element(By.TAG_NAME, "body").send_keys(what)
        wait.until(lambda _: "5 / 6 answered" in browser.find_element(By.ID, "progress").text)
        page = browser.find_element(By.ID, "left").text + browser.find_element(By.ID, "right").text
        assert browser.title != "pwned"  # the hostile prediction of s0 was shown as text, never run
        assert browser.find_element(By.ID, "task").get_attribute("data-sample") == "s5" and "says 5" in page
    finally:
        browser.quit()
    rows = list(csv.DictReader((tmp_path / "human.csv").open()))
    assert [r["sample_id"] for r in rows] == shown == ["s0", "s1", "s2", "s3", "s4"]
    choices = ["left", "right", "tie", "left", "both_bad"]
    assert [r["verdict"] for r in rows] == [verdict_of(c, shown_order(s, "tester")) for c, s in zip(choices, shown)]
    assert all(r["annotator"] == "tester" and r["shown_order"] == shown_order(r["sample_id"], "tester") for r in rows)
    assert len(read_answers(tmp_path / "human.csv")) == 5
