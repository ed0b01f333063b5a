# dicom-node: the daemon and node-ctl in one image.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NODE_CONFIG=/etc/dicom-node/node.cfg

WORKDIR /opt/dicom-node
COPY pyproject.toml README.md ./
COPY node ./node
COPY storage ./storage
COPY config ./config
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /var/lib/dicom-node dicom \
    && mkdir -p /var/lib/dicom-node /etc/dicom-node \
    && chown dicom /var/lib/dicom-node
COPY docker/node.cfg /etc/dicom-node/node.cfg

USER dicom
VOLUME ["/var/lib/dicom-node"]
EXPOSE 11112
# node-ctl echo exits non-zero when the node does not answer C-ECHO.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s \
    CMD ["node-ctl", "echo", "-aec", "DICOM_NODE", "127.0.0.1", "11112"]
CMD ["node-ctl", "serve"]
