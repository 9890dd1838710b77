# dialer as a container: slim, non-root, `dialer run` as the entry point.
#   build:  docker/build.sh   (podman/buildah; see stack-facts "Building the Docker image")
#   run:    podman run -v ./config:/etc/dialer:ro -v dialer-state:/var/lib/dialer \
#             -e DIALER_AMI_SECRET=... -e DIALER_API_TOKEN=... -p 127.0.0.1:8321:8321 localhost/dialer
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /src/
COPY dialer /src/dialer
COPY docker /src/docker
RUN DIALER_SYSTEM=1 sh /src/docker/install.sh /src /opt/dialer && rm -rf /src

ENV PATH=/opt/dialer/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DIALER_CONFIG=/etc/dialer/dialer.yaml
USER dialer
WORKDIR /var/lib/dialer
VOLUME ["/etc/dialer", "/etc/dialer/campaigns", "/var/lib/dialer"]
EXPOSE 8321
STOPSIGNAL SIGTERM
ENTRYPOINT ["dialer", "run"]
