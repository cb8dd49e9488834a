//! Prometheus exposition for every role (`/metrics` on the `--metrics` address).

/// Installs the Prometheus exporter with an HTTP listener (must run inside the tokio runtime).
pub fn install(addr: std::net::SocketAddr, role: &str) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .add_global_label("role", role)
        .install()
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))
}
