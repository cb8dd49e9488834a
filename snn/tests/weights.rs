//! The weight file: round trip and rejection of everything else, without panics.

mod common;

use std::collections::HashMap;

use common::{cheetah_ann, cheetah_snn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use spikerl_snn::{
    NamedTensor, NeuronKind, PolicyConfig, SnnError, decode_policy, encode_policy, expected_shapes,
    initial_tensors,
};

/// A safetensors file with arbitrary tensors and metadata, bypassing `encode_policy`'s checks.
fn raw_file(tensors: &[(&str, Vec<usize>, Vec<f32>)], meta: &[(&str, &str)]) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (n.to_string(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let meta: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn file_of(
    cfg: &PolicyConfig,
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>),
    version: &str,
) -> Vec<u8> {
    let mut ts: Vec<(String, Vec<usize>, Vec<f32>)> =
        initial_tensors(cfg, 1).unwrap().into_iter().map(|(n, t)| (n, t.shape, t.data)).collect();
    edit(&mut ts);
    let cfg_json = serde_json::to_string(cfg).unwrap();
    let refs: Vec<(&str, Vec<usize>, Vec<f32>)> =
        ts.iter().map(|(n, s, d)| (n.as_str(), s.clone(), d.clone())).collect();
    raw_file(
        &refs,
        &[
            ("format", "spikerl-policy"),
            ("format_version", version),
            ("policy_version", "7"),
            ("config", &cfg_json),
        ],
    )
}

#[test]
fn round_trip_every_network() {
    let mut cfgs: Vec<PolicyConfig> = NeuronKind::ALL.iter().map(|&k| cheetah_snn(k)).collect();
    cfgs.push(cheetah_ann());
    for cfg in cfgs {
        let tensors = initial_tensors(&cfg, 42).unwrap();
        let bytes = encode_policy(&cfg, &tensors, u64::MAX - 3).unwrap();
        let (cfg2, tensors2, version) = decode_policy(&bytes).unwrap();
        assert_eq!(cfg2, cfg);
        assert_eq!(tensors2, tensors);
        assert_eq!(version, u64::MAX - 3);
        // The file is plain safetensors with our metadata.
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["format"], "spikerl-policy");
        assert_eq!(meta["format_version"], "1");
    }
}

#[test]
fn parameter_names_are_the_documented_ones() {
    let names = |cfg: &PolicyConfig| expected_shapes(cfg).unwrap();
    let lif = names(&cheetah_snn(NeuronKind::Lif));
    let want: Vec<(&str, Vec<usize>)> = vec![
        ("decoder.bias", vec![6]),
        ("decoder.weight", vec![6, 10]),
        ("encoder.mu", vec![17, 10]),
        ("encoder.sigma", vec![17, 10]),
        ("layers.0.bias", vec![256]),
        ("layers.0.weight", vec![256, 170]),
        ("layers.1.bias", vec![256]),
        ("layers.1.weight", vec![256, 256]),
        ("layers.2.bias", vec![60]),
        ("layers.2.weight", vec![60, 256]),
    ];
    assert_eq!(lif.iter().map(|(n, s)| (n.as_str(), s.clone())).collect::<Vec<_>>(), want);
    let plif = names(&cheetah_snn(NeuronKind::Plif));
    for i in 0..3 {
        assert_eq!(plif[&format!("layers.{i}.decay_logit")], vec![1]);
    }
    let ann = names(&cheetah_ann());
    assert_eq!(ann.len(), 6);
    assert_eq!(ann["layers.0.weight"], vec![256, 17]);
}

#[test]
fn encode_refuses_tensors_that_do_not_fit() {
    let cfg = cheetah_snn(NeuronKind::Lif);
    let mut t = initial_tensors(&cfg, 0).unwrap();
    t.remove("decoder.bias");
    assert!(
        matches!(encode_policy(&cfg, &t, 0), Err(SnnError::MissingTensor { name }) if name == "decoder.bias")
    );
    let mut t = initial_tensors(&cfg, 0).unwrap();
    t.get_mut("layers.0.bias").unwrap().data.pop();
    assert!(matches!(encode_policy(&cfg, &t, 0), Err(SnnError::DataLength { .. })));
}

#[test]
fn decode_rejects_with_clear_errors() {
    let cfg = cheetah_snn(NeuronKind::Clif);
    // Sanity: the helper's unedited file decodes.
    assert!(decode_policy(&file_of(&cfg, |_| {}, "1")).is_ok());

    let e = decode_policy(&file_of(&cfg, |_| {}, "2")).unwrap_err();
    assert!(matches!(e, SnnError::UnsupportedVersion { ref found, .. } if found == "2"), "{e}");
    assert!(e.to_string().contains("format_version"), "{e}");

    let e = decode_policy(&file_of(&cfg, |ts| ts.retain(|(n, _, _)| n != "encoder.sigma"), "1")).unwrap_err();
    assert!(matches!(e, SnnError::MissingTensor { ref name } if name == "encoder.sigma"), "{e}");
    assert!(e.to_string().contains("encoder.sigma"));

    let e = decode_policy(&file_of(&cfg, |ts| ts.push(("layers.9.weight".into(), vec![1], vec![0.0])), "1"))
        .unwrap_err();
    assert!(matches!(e, SnnError::UnexpectedTensor { ref name } if name == "layers.9.weight"), "{e}");

    let e = decode_policy(&file_of(
        &cfg,
        |ts| {
            let w = ts.iter_mut().find(|(n, _, _)| n == "layers.1.weight").unwrap();
            w.1 = vec![128, 512];
        },
        "1",
    ))
    .unwrap_err();
    assert!(
        matches!(e, SnnError::ShapeMismatch { ref expected, ref found, .. } if expected == &vec![256, 256] && found == &vec![128, 512]),
        "{e}"
    );
    assert!(e.to_string().contains("[128, 512]"), "{e}");

    // A plain safetensors file that is not ours.
    let e = decode_policy(&raw_file(&[("x", vec![1], vec![1.0])], &[])).unwrap_err();
    assert!(matches!(e, SnnError::WrongFormat { found: None }), "{e}");
    let e = decode_policy(&raw_file(&[], &[("format", "pytorch")])).unwrap_err();
    assert!(matches!(e, SnnError::WrongFormat { found: Some(_) }), "{e}");

    // Broken metadata values.
    let json = serde_json::to_string(&cfg).unwrap();
    let e = decode_policy(&raw_file(
        &[],
        &[("format", "spikerl-policy"), ("format_version", "1"), ("policy_version", "-1"), ("config", &json)],
    ))
    .unwrap_err();
    assert!(matches!(e, SnnError::BadMetadata { key: "policy_version", .. }), "{e}");
    let e = decode_policy(&raw_file(
        &[],
        &[("format", "spikerl-policy"), ("format_version", "1"), ("policy_version", "1"), ("config", "{")],
    ))
    .unwrap_err();
    assert!(matches!(e, SnnError::BadMetadata { key: "config", .. }), "{e}");
    let e = decode_policy(&raw_file(
        &[],
        &[("format", "spikerl-policy"), ("format_version", "1"), ("config", &json)],
    ))
    .unwrap_err();
    assert!(matches!(e, SnnError::MissingMetadata { key: "policy_version" }), "{e}");
    // An invalid config inside a well-formed file.
    let mut bad = cfg.clone();
    bad.max_action.push(1.0);
    let bad_json = serde_json::to_string(&bad).unwrap();
    let e = decode_policy(&raw_file(
        &[],
        &[
            ("format", "spikerl-policy"),
            ("format_version", "1"),
            ("policy_version", "1"),
            ("config", &bad_json),
        ],
    ))
    .unwrap_err();
    assert!(matches!(e, SnnError::InvalidConfig { field: "max_action", .. }), "{e}");

    // A tensor of the wrong dtype.
    let good = file_of(&cfg, |_| {}, "1");
    let mut meta = HashMap::new();
    for (k, v) in [("format", "spikerl-policy"), ("format_version", "1"), ("policy_version", "1")] {
        meta.insert(k.to_string(), v.to_string());
    }
    meta.insert("config".into(), json.clone());
    let st = safetensors::SafeTensors::deserialize(&good).unwrap();
    let ints = [0u8; 24];
    let mut views: Vec<(String, TensorView<'_>)> =
        st.tensors().into_iter().filter(|(n, _)| n != "decoder.bias").collect();
    views.push(("decoder.bias".into(), TensorView::new(Dtype::I32, vec![6], &ints).unwrap()));
    let e = decode_policy(&safetensors::serialize(views, Some(meta)).unwrap()).unwrap_err();
    assert!(matches!(e, SnnError::WrongDtype { ref name, .. } if name == "decoder.bias"), "{e}");
}

#[test]
fn decode_never_panics_on_garbage() {
    let cfg = cheetah_snn(NeuronKind::Dn);
    let good = encode_policy(&cfg, &initial_tensors(&cfg, 3).unwrap(), 5).unwrap();
    assert!(matches!(decode_policy(&[]), Err(SnnError::Malformed { .. })));
    assert!(matches!(decode_policy(b"hello world, not a policy"), Err(SnnError::Malformed { .. })));
    assert!(matches!(decode_policy(&good[..good.len() - 1]), Err(SnnError::Malformed { .. })));
    assert!(matches!(decode_policy(&good[..100]), Err(SnnError::Malformed { .. })));
    // A huge declared header length.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(decode_policy(&huge).is_err());
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..300 {
        let mut b = good.clone();
        // Corrupt a few bytes, mostly in the header where parsing happens.
        for _ in 0..rng.random_range(1..4) {
            let hi = if rng.random_bool(0.8) { 600.min(b.len()) } else { b.len() };
            let i = rng.random_range(0..hi);
            b[i] = rng.random();
        }
        let _ = decode_policy(&b);
        let n = rng.random_range(0..200);
        let noise: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        assert!(decode_policy(&noise).is_err());
    }
}

#[test]
fn named_tensor_checks_its_length() {
    assert!(NamedTensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
    assert!(matches!(
        NamedTensor::new(vec![2, 3], vec![0.0; 5]),
        Err(SnnError::DataLength { expected: 6, found: 5, .. })
    ));
}

/// The same weights give the same bytes, however the metadata map happens to iterate (a resumed run's
/// final policy is compared with the uninterrupted run's byte for byte), and the file still decodes
/// and safetensors still reads it (its header sorted and padded, the data 8-byte aligned).
#[test]
fn encoding_is_byte_for_byte_deterministic() {
    let cfg = cheetah_snn(NeuronKind::Lif);
    let tensors = initial_tensors(&cfg, 3).unwrap();
    let first = encode_policy(&cfg, &tensors, 42).unwrap();
    for _ in 0..20 {
        assert!(encode_policy(&cfg, &tensors, 42).unwrap() == first, "two encodings differ");
    }
    let header_len = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + header_len) % 8, 0, "the data starts 8-byte aligned");
    let (_, decoded, version) = decode_policy(&first).unwrap();
    assert_eq!(version, 42);
    assert_eq!(decoded, tensors);
    safetensors::SafeTensors::deserialize(&first).unwrap();
}
