# The learner image, offline (deploy/build-images.sh --offline): the host-built spikerl binary and CPU
# libtorch + libmujoco on the base made by base.Dockerfile. The binary's rpath $ORIGIN/../lib finds the libraries.
ARG BASE_IMAGE=spikerl-base:latest
FROM ${BASE_IMAGE}
COPY lib/ /opt/spikerl/lib/
COPY spikerl /opt/spikerl/bin/spikerl
# Checkpoints and run folders: a volume, owned by the non-root user so a fresh named volume is writable.
COPY --chown=10001:10001 runs/ /runs/
ENV SPIKERL_LISTEN=0.0.0.0:50051 \
    SPIKERL_METRICS=0.0.0.0:9100 \
    SPIKERL_RUN_DIR=/runs/run \
    SPIKERL_RESUME=auto \
    SPIKERL_LOG=info,mujoco=error
USER 10001:10001
WORKDIR /runs
VOLUME ["/runs"]
EXPOSE 50051 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["healthcheck"]
# spikerl itself, with SPIKERL_RESUME=auto: resume when the run folder holds a checkpoint (deploy/docker/entrypoint)
ENTRYPOINT ["spikerl-entrypoint"]
CMD ["learner"]
