# The peerbook node image, built from nothing pulled from a registry:
# FROM scratch plus a statically linked binary built on the host.
#
# scripts/compose-image builds the binary (cargo, glibc with crt-static, its
# own target dir target/compose), stages it with an empty data dir under
# target/docker/ and runs `docker build -t peerbook:local .` with this file;
# `docker compose up --build` rebuilds the image from what is staged. Run
# scripts/compose-image again after changing the code. Where images can be
# pulled from a registry, Dockerfile.registry builds from source instead.
FROM scratch

COPY target/docker/peerbook /usr/local/bin/peerbook
# The data dir (identity key and database), owned by the unprivileged user
# the node runs as; a named volume mounted here starts with this ownership.
COPY --chown=10001:10001 target/docker/data /var/lib/peerbook
USER 10001:10001

# Inside a container the API must bind every interface for a published port
# to reach it, so it needs a token: set PEERBOOK_API_TOKEN when running.
ENV PEERBOOK_DATA_DIR=/var/lib/peerbook \
    PEERBOOK_API=0.0.0.0:8080
VOLUME /var/lib/peerbook
# 4001: libp2p (TCP); 8080: the HTTP API.
EXPOSE 4001 8080

# `peerbook status` exits non-zero when the node's API does not answer.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/peerbook", "status", "--api", "http://127.0.0.1:8080"]

ENTRYPOINT ["/usr/local/bin/peerbook"]
CMD ["node"]
