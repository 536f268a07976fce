# Rendered by `cortex build` for ubuntu/cuda on linux/arm64.
# Edit the Cortexfile, not this file. Config hash: 0000000000000000000000000000000000000000000000000000000000000000
#
# The `packages` and `builder` stages may use the build network settings in build/ (proxy,
# extra CA certificates, index mirror). The final stage never copies build/: it takes only
# the unpacked runtime packages and the Python environment, so no build secret reaches it.

FROM docker.io/nvidia/cuda:13.2.1-runtime-ubuntu24.04 AS packages
COPY build/ /tmp/cortex-build/
RUN . /tmp/cortex-build/env.sh \
 && apt-get update \
 && mkdir -p /tmp/debs/partial /opt/overlay/etc/ssl/certs \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --download-only \
    -o Dir::Cache::archives=/tmp/debs python3 libgomp1 ca-certificates \
 && for deb in /tmp/debs/*.deb; do dpkg-deb -x "$deb" /opt/overlay; done \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && cp /etc/ssl/certs/ca-certificates.crt /opt/overlay/etc/ssl/certs/ \
 && for dir in bin sbin lib lib64; do \
      if [ -d "/opt/overlay/$dir" ] && [ ! -L "/opt/overlay/$dir" ]; then \
        mkdir -p "/opt/overlay/usr/$dir" && cp -a "/opt/overlay/$dir/." "/opt/overlay/usr/$dir/" \
        && rm -rf "/opt/overlay/$dir"; fi; done \
 && rm -rf /opt/overlay/usr/share/doc /opt/overlay/usr/share/man /opt/overlay/usr/share/info \
    /opt/overlay/usr/share/locale /opt/overlay/usr/share/lintian /opt/overlay/var/lib/apt/lists/* \
 && rm -rf /var/lib/apt/lists/* /tmp/debs

FROM docker.io/nvidia/cuda:13.2.1-devel-ubuntu24.04 AS builder
COPY build/ /tmp/cortex-build/
RUN . /tmp/cortex-build/env.sh \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
COPY wheels/ /tmp/cortex-wheels/
RUN . /tmp/cortex-build/env.sh \
 && python3 -m venv /opt/cortex \
 && /opt/cortex/bin/pip download --no-cache-dir --no-deps --no-binary :all: -d /tmp/llama \
    llama-cpp-python==0.3.36 \
 && tar -xzf /tmp/llama/*.tar.gz -C /tmp/llama \
 && patch -p1 -d /tmp/llama/llama_cpp_python-0.3.36 </tmp/cortex-build/llama-patches/0001-ggml-amx-tile-config.patch \
 && CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=87' CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    /opt/cortex/bin/pip install --no-cache-dir --no-compile /tmp/llama/llama_cpp_python-0.3.36 \
 && rm -rf /tmp/llama \
 && /opt/cortex/bin/pip install --no-cache-dir --no-compile --find-links /tmp/cortex-wheels \
    '/tmp/cortex-wheels/menlo_cortex-0.1.0-py3-none-any.whl[runtime]' \
 && /opt/cortex/bin/python /tmp/cortex-build/trim-venv.py /opt/cortex

FROM docker.io/nvidia/cuda:13.2.1-runtime-ubuntu24.04
COPY --from=packages /opt/overlay/ /
RUN rm -rf /usr/local/cuda-*/compat \
 && ldconfig \
 && groupadd --system --gid 10001 cortex \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/cortex --no-create-home --shell /usr/sbin/nologin cortex \
 && mkdir -p /etc/cortex /var/lib/cortex/models \
 && chown 10001:10001 /var/lib/cortex /var/lib/cortex/models \
 && rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/locale/* /var/cache/apt/* /var/lib/apt/lists/* /var/log/*
COPY --from=builder /opt/cortex /opt/cortex
# Python's ssl looks here when the distro's openssl package (and its cert links) is absent.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# model gemma: one layer each, so an edit of the Cortexfile re-uses it
COPY models/a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818.gguf /var/lib/cortex/models/a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818.gguf
COPY Cortexfile.yaml /etc/cortex/Cortexfile.yaml
LABEL ai.menlo.cortex.accelerator="cuda" \
      ai.menlo.cortex.config-hash="0000000000000000000000000000000000000000000000000000000000000000" \
      ai.menlo.cortex.distro="ubuntu" \
      org.opencontainers.image.created="2026-01-01T00:00:00Z" \
      org.opencontainers.image.description="Cortex LLM appliance serving: gemma" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/menloresearch/cortex" \
      org.opencontainers.image.title="cortex" \
      org.opencontainers.image.vendor="Menlo Research" \
      org.opencontainers.image.version="0.1.0"
EXPOSE 8443
USER 10001:10001
WORKDIR /var/lib/cortex
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["/opt/cortex/bin/cortex", "probe", "--defaults", "docker", "-f", "/etc/cortex/Cortexfile.yaml"]
ENTRYPOINT ["/opt/cortex/bin/cortex", "start", "--defaults", "docker", "-f", "/etc/cortex/Cortexfile.yaml"]
