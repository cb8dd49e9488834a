# Prometheus, offline (deploy/build-images.sh --offline): the server binary of Debian's prometheus package
# on the base made by base.Dockerfile. Configuration is mounted at /etc/prometheus (docker-compose.yml mounts
# deploy/prometheus/ there); data lives in the /prometheus volume.
ARG BASE_IMAGE=spikerl-base:latest
FROM ${BASE_IMAGE}
COPY prometheus /usr/bin/prometheus
COPY --chown=65534:65534 data/ /prometheus/
USER 65534:65534
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 CMD ["healthcheck", "http://127.0.0.1:9090/-/healthy"]
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.listen-address=:9090"]
