# modelmix gateway image. Build: docker build -t modelmix .
# Not built on the development machine (no Docker there): tests/deploy checks it statically.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir ".[postgres]" \
 && useradd --uid 10001 --create-home modelmix \
 && mkdir -p /data /etc/modelmix \
 && chown modelmix /data

USER modelmix
# A SQLite ledger lives here unless the config's ledger.url points at PostgreSQL.
ENV MODELMIX_HOME=/data
VOLUME ["/data"]
EXPOSE 4000

# The container's own health check: the liveness endpoint.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:4000/health', timeout=2).status != 200)"]

# SIGTERM: stop accepting, finish requests in flight for up to server.shutdown_deadline seconds.
STOPSIGNAL SIGTERM
CMD ["modelmix", "serve", "--config", "/etc/modelmix/modelmix.yaml", "--host", "0.0.0.0", "--port", "4000"]
