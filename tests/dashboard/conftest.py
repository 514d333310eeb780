"""The browser fixtures of the dashboard tests (see `browser.py`)."""

from tests.dashboard.browser import browser, tab

__all__ = ["browser", "tab"]
