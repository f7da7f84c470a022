"""feedbot: publish and watch news feeds."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/feedbot/feedbot"
USER_AGENT = f"feedbot/{__version__} (+{PROJECT_URL})"
