# The vvkit runtime image: Python, the vv package and its entrypoint
# vv-start. Component images build FROM it (see blueprints/*/template/Dockerfile).
#   docker build -t vvkit/runtime:latest .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only the runtime distribution: the CLI's dependencies (Copier, Typer,
# Rich) stay out of service images.
COPY runtime /opt/vvkit-runtime
RUN pip install --no-cache-dir /opt/vvkit-runtime && rm -rf /opt/vvkit-runtime

RUN useradd --system --create-home --home-dir /service vv
WORKDIR /service
USER vv

ENV HTTP_PORT=80 \
    LOG_LEVEL=INFO
ENTRYPOINT ["vv-start"]
