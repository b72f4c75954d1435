# Edge image: slim, no torch. Build from the repository root:
#   docker build -f docker/edge.Dockerfile -t hazardwatch-edge .
FROM python:3.11-slim
WORKDIR /opt/hazardwatch
COPY pyproject.toml README.md ./
COPY hazardwatch hazardwatch
COPY edge edge
COPY central central
COPY models models
COPY configs configs
# The same install command the tests use (.ci/run), without the test extra.
RUN pip install --no-cache-dir '.[edge]' && mkdir -p /var/lib/hazardwatch && chown nobody /var/lib/hazardwatch
USER nobody
EXPOSE 8090
ENTRYPOINT ["hazardwatch"]
CMD ["edge", "--config", "/etc/hazardwatch/edge.yaml"]
