# The offline base (deploy/build-images.sh --offline): no registry, nothing pulled. The context is staged by
# build-images.sh: rootfs/ holds this host's dynamic loader, glibc, libstdc++/libgcc_s (the very libraries the
# binaries were built and tested against), bash (for the health check) and /etc/passwd with the user spikerl.
FROM scratch
COPY rootfs/ /
# Empty folders owned by the non-root user (COPY --chown of an empty folder creates it with that owner).
COPY --chown=10001:10001 home/ /home/spikerl/
ENV PATH=/opt/spikerl/bin:/usr/local/bin:/usr/bin:/bin \
    HOME=/home/spikerl \
    LANG=C.UTF-8
CMD ["/bin/bash"]
