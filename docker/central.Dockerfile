# Central image: aggregator, REST API and the duty officer's dashboard. No OpenCV, ONNX Runtime or torch.
# Build from the repository root:
#   docker build -f docker/central.Dockerfile -t hazardwatch-central .
FROM python:3.11-slim
WORKDIR /opt/hazardwatch
COPY pyproject.toml README.md ./
COPY hazardwatch hazardwatch
COPY edge edge
COPY central central
COPY models models
COPY configs configs
# The install command the tests use (.ci/run) with neither the test nor the edge extra: central needs
# only the base dependencies (aiohttp, paho-mqtt, psycopg, pydantic).
RUN pip install --no-cache-dir . && mkdir -p /var/lib/hazardwatch && chown nobody /var/lib/hazardwatch
USER nobody
EXPOSE 8080
ENTRYPOINT ["hazardwatch"]
CMD ["central", "--config", "/etc/hazardwatch/central.yaml"]
