//! TLS and mutual TLS between real actor and learner processes, with certificates made for the test.
//! An actor with the right CA, client certificate and token trains; a client without a certificate
//! is refused by the handshake, and one without the token is refused with UNAUTHENTICATED.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::Path;
use std::time::Duration;

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki { ca: ca_cert.pem(), server: leaf(vec!["localhost".into()]), client: leaf(vec!["actor".into()]) }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn mutual_tls_with_token() {
    let dir = temp_dir("tls");
    let pki = pki();
    let ca = write(&dir, "ca.pem", &pki.ca);
    let (server_cert, server_key) =
        (write(&dir, "server.pem", &pki.server.0), write(&dir, "server.key", &pki.server.1));
    let (client_cert, client_key) =
        (write(&dir, "client.pem", &pki.client.0), write(&dir, "client.key", &pki.client.1));
    let token = write(&dir, "token", "tls-test-token\n");
    let (grpc, metrics) = (free_port(), free_port());
    let maddr = format!("127.0.0.1:{metrics}");
    let mut procs = Processes::default();
    let tls = [
        "--tls-cert",
        &server_cert,
        "--tls-key",
        &server_key,
        "--tls-client-ca",
        &ca,
        "--auth-token-file",
        &token,
    ];
    let run =
        [&["--steps", "100000", "--random-steps", "100000", "--eval-every", "0"][..], &tls[..]].concat();
    // learner_cmd's, with tonic's server debug lines: they are where a refused TLS handshake is logged.
    let mut learner = spikerl();
    learner.args(["learner", "--listen", &format!("127.0.0.1:{grpc}"), "--metrics", &maddr]);
    learner.args(["--run-dir", dir.join("run").to_str().unwrap(), "--env", "Pendulum-v1", "--algo", "ann"]);
    learner.args(["--threads", "1", "--log", "info,tonic::transport::server=debug"]).args(&run);
    let learner_log = dir.join("learner.log");
    procs.spawn("learner", learner, &learner_log);

    let url = format!("https://localhost:{grpc}");
    let mut actor = spikerl();
    actor.args([
        "actor",
        "--learner",
        &url,
        "--name",
        "tls-actor",
        "--tls-ca",
        &ca,
        "--tls-cert",
        &client_cert,
    ]);
    actor.args(["--tls-key", &client_key, "--auth-token-file", &token, "--log", "info"]);
    procs.spawn("actor", actor, &dir.join("actor.log"));
    wait_metrics(&maddr, Duration::from_secs(60), "transitions over mutual TLS", |t| {
        metric(t, "spikerl_learner_transitions_received_total", &[("actor", "0")]).unwrap_or(0.0) > 0.0
    });

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
        let register = spikerl_proto::RegisterRequest {
            protocol_version: spikerl_proto::PROTOCOL_VERSION,
            actor_name: "intruder".into(),
            num_envs: 1,
        };
        // No client certificate: the learner's TLS handshake refuses it, nothing reaches the service. Under
        // TLS 1.3 the client's side of the handshake completes before the server checks its certificate, so
        // the client sees the refusal as anything from the server's alert to a broken pipe or a closed
        // connection: the evidence that it was the handshake, and not a learner that is down, is the
        // learner's own account of it (tonic logs a refused handshake as "tls accept error").
        let unauthenticated =
            |text: &str| metric(text, "spikerl_learner_unauthenticated_requests_total", &[]);
        let refusals = || {
            std::fs::read_to_string(&learner_log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("tls accept error"))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let before = scrape(&maddr).expect("the learner's metrics");
        let refusals_before = refusals();
        assert!(refusals_before.is_empty(), "the actor's handshakes were refused: {refusals_before:?}");
        let tls =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca)).domain_name("localhost");
        let endpoint = Endpoint::from_shared(url.clone()).unwrap().tls_config(tls.clone()).unwrap();
        let client_error = match endpoint.connect().await {
            Err(e) => format!("{e:?}"),
            Ok(ch) => match spikerl_proto::learner_client::LearnerClient::new(ch)
                .register(register.clone())
                .await
            {
                Err(status) => format!("{status:?}"),
                Ok(reply) => panic!("a client without a certificate registered under mutual TLS: {reply:?}"),
            },
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let refused = loop {
            let r = refusals();
            if !r.is_empty() {
                break r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the client failed ({client_error}) but the learner logged no refused TLS handshake:\n{}",
                std::fs::read_to_string(&learner_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        eprintln!("client: {client_error}\nlearner: {refused:?}");
        assert!(
            refused.iter().all(|l| l.contains("peer sent no certificates")),
            "the handshakes (the channel may retry once) refused for the missing client certificate: {refused:?}"
        );
        let after = scrape(&maddr).expect("the learner is still serving after the refused handshake");
        assert_eq!(
            unauthenticated(&after),
            unauthenticated(&before),
            "the request without a certificate never reached the service"
        );

        // Certificate but no token: UNAUTHENTICATED from the service itself, and counted.
        let tls = tls.identity(Identity::from_pem(&pki.client.0, &pki.client.1));
        let ch =
            Endpoint::from_shared(url.clone()).unwrap().tls_config(tls).unwrap().connect().await.unwrap();
        let e = spikerl_proto::learner_client::LearnerClient::new(ch).register(register).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
        let text = wait_metrics(&maddr, Duration::from_secs(10), "the refused token counted", |t| {
            unauthenticated(t).unwrap_or(0.0) > unauthenticated(&before).unwrap_or(0.0)
        });
        assert_eq!(unauthenticated(&text), Some(unauthenticated(&before).unwrap_or(0.0) + 1.0), "{text}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
