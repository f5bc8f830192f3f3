# patter-local as a container image: the package from this checkout, run as a
# non-root user, listening on $PORT on every interface.
#
#   docker build -t patter-local .
#   docker run -p 8000:8000 -e PATTER_WEBHOOK_URL=voice.example.com \
#       -e PATTER_STREAM_SECRET=... -e TWILIO_AUTH_TOKEN=... patter-local
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=8000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY patter_core ./patter_core
COPY patter_anyio ./patter_anyio
RUN pip install --no-cache-dir '.[fast]' \
    && useradd --system --uid 10001 --no-create-home patter

USER patter
EXPOSE 8000

# /health answers 503 while draining, so a container being stopped is reported
# unhealthy at once and its live calls still finish (--shutdown-grace).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"

# exec form through sh so $PORT is expanded; exec keeps the server as PID 1's
# only child, so SIGTERM (docker stop) reaches it and starts the drain.
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "exec python -m patter_anyio serve --host 0.0.0.0 --port \"${PORT}\""]
