# The actor image, offline (deploy/build-images.sh --offline): the actor-only spikerl binary
# (--no-default-features: no libtorch) and libmujoco on the base made by base.Dockerfile.
ARG BASE_IMAGE=spikerl-base:latest
FROM ${BASE_IMAGE}
COPY lib/ /opt/spikerl/lib/
COPY spikerl /opt/spikerl/bin/spikerl
ENV SPIKERL_LEARNER=http://learner:50051 \
    SPIKERL_METRICS=0.0.0.0:9101 \
    SPIKERL_LOG=info,mujoco=error
USER 10001:10001
WORKDIR /home/spikerl
EXPOSE 9101
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["healthcheck"]
ENTRYPOINT ["spikerl"]
CMD ["actor"]
