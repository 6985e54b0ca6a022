"""Debian's Chromium as the web page's tests and benchmark drive it through Playwright: the
system's binary (Playwright never downloads a browser here), with nothing reaching a network."""

import shutil
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# root needs --no-sandbox; the rest stop Chromium's own calls home on a closed network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
MISSING = ("Chromium is not installed: `scripts/setup.sh --tests` installs it (as root or with "
           "sudo), or `apt-get install chromium`.")


def launch(playwright: Any, *extra_args: str) -> Any:
    """A headless Chromium browser from a started Playwright (with extra switches)."""
    return playwright.chromium.launch(executable_path=CHROMIUM,
                                      args=[*CHROMIUM_ARGS, *extra_args])
