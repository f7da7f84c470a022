# feedbot in a container. State (SQLite, lock) in /app/state, published feeds in /app/feeds.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY feedbot ./feedbot
RUN pip install '.[postgres]' \
    && useradd --system --no-create-home --uid 10001 feedbot \
    && mkdir -p /app/state /app/feeds && chown feedbot /app/state /app/feeds
COPY config.toml ./config.toml
COPY examples ./examples

USER feedbot
VOLUME ["/app/state", "/app/feeds"]
ENV FEEDBOT_CONFIG=/app/config.toml
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
# The shipped config listens on loopback only. To publish the port, mount a config with
# server.host = "0.0.0.0" and server.token set (the status page and metrics then need it).
CMD ["feedbot", "--log-format", "json", "run"]
