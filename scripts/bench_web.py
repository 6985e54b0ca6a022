#!/usr/bin/env python
"""Time from pressing send to the first reply text on screen: the web page in headless Chromium
against the thin CLI client (`chat --server`), the same messages to two copies of one agent on
one real server, taking turns (who goes first alternates), side by side.

Prints one JSON object. Run inside the project's environment (Chromium installed):
    .venv/bin/python scripts/bench_web.py --json
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect

from memgpt_local.bench.browser import CHROMIUM, MISSING, launch
from memgpt_local.cli.remote import RemoteAgent
from memgpt_local.server.process import ServerProcess

MESSAGES = ["Hello! I'm Rosa and I just moved to Porto.",
            "I have a dog called Pimenta. What should I call you?",
            "Tomorrow I start a new job as a nurse.",
            "What do you remember about me so far?",
            "Do you like long walks by the river?",
            "Thanks, talk to you later!"]
TURN_S = 600
# the page's own clock: from the click on Send to the first reply text in the transcript
WATCH = """() => {
  const transcript = document.getElementById("transcript");
  window.firstReplyMs = null;
  const observer = new MutationObserver(() => {
    const reply = transcript.querySelector(".turn:last-child .bubble.agent");
    if (reply && reply.textContent) {
      window.firstReplyMs = performance.now() - start;
      observer.disconnect();
    }
  });
  observer.observe(transcript, { childList: true, subtree: true, characterData: true });
  const start = performance.now();
  document.getElementById("send-button").click();
}"""


def cli_first_reply_s(agent: RemoteAgent, text: str) -> float | None:
    """The thin client's time from sending to its first reply event (None: no reply)."""
    first: list[float] = []
    start = time.perf_counter()

    def listen(kind: str, _value) -> None:
        if kind == "reply" and not first:
            first.append(time.perf_counter() - start)

    agent.send(text, listen)
    return first[0] if first else None


def web_first_reply_s(page, text: str) -> float | None:
    """The page's time from the click to the first reply text (None: no reply)."""
    page.fill("#message", text)
    page.evaluate(WATCH)
    expect(page.locator("#send-button")).to_be_enabled(timeout=TURN_S * 1000)
    first_ms = page.evaluate("window.firstReplyMs")
    return None if first_ms is None else first_ms / 1000


def run(model: str, home: Path) -> dict:
    from playwright.sync_api import sync_playwright

    server = ServerProcess(home, "--model", model)
    try:
        with httpx.Client(base_url=server.url, timeout=TURN_S) as http, \
                sync_playwright() as playwright:
            http.post("/agents", json={"name": "cli", "model": model}).raise_for_status()
            http.post("/agents/cli/copy", json={"name": "web"}).raise_for_status()
            browser = launch(playwright)
            page = browser.new_page()
            page.goto(f"{server.url}/?agent=web")
            page.wait_for_selector("form.block[data-label=human]")
            client, web, cli = RemoteAgent(server.url, "cli"), [], []
            for number, text in enumerate(MESSAGES):
                runs = [lambda t=text: web.append(web_first_reply_s(page, t)),
                        lambda t=text: cli.append(cli_first_reply_s(client, t))]
                for measure in runs if number % 2 == 0 else runs[::-1]:
                    measure()
            browser.close()
    finally:
        server.stop()
    return summary(model, web, cli)


def summary(model: str, web: list, cli: list) -> dict:
    """Medians over the messages both answered, and their ratio (web over CLI)."""
    pairs = [(w, c) for w, c in zip(web, cli, strict=True) if w is not None and c is not None]
    web_median = statistics.median(w for w, _ in pairs) if pairs else None
    cli_median = statistics.median(c for _, c in pairs) if pairs else None
    return {"model": model, "messages": len(MESSAGES), "answered_by_both": len(pairs),
            "web_first_reply_s": web, "cli_first_reply_s": cli,
            "web_median_s": web_median, "cli_median_s": cli_median,
            "web_over_cli": web_median / cli_median if pairs else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    args = parser.parse_args()
    if CHROMIUM is None:
        sys.exit(MISSING)
    with tempfile.TemporaryDirectory() as home:
        result = run(args.model, Path(home))
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
