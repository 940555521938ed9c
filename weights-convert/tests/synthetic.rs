//! Checkpoint features the fixtures do not cover, on small checkpoints built opcode by opcode:
//! big-endian archives, distinct tensors sharing a storage, strided and broadcast views,
//! `argparse.Namespace` options, scalars, protocol 4, legacy storage views, and refusals.

mod common;

use common::{f32_bytes, f32_values, legacy_checkpoint, zip_archive, zip_checkpoint, Output, Pickle};
use weights_convert::{convert_bytes, convert_file, ConvertError, ConvertOptions, Kind};

fn convert(bytes: &[u8], options: &ConvertOptions) -> Result<Output, ConvertError> {
    let mut out = Vec::new();
    convert_bytes(bytes, "synthetic.pt", options, &mut out)?;
    Ok(Output::parse(&out))
}

fn with_kind(kind: Kind) -> ConvertOptions {
    ConvertOptions {
        kind: Some(kind),
        ..Default::default()
    }
}

#[test]
fn big_endian_archives_are_swapped_to_little_endian() {
    let mut p = Pickle::new(2);
    p.empty_dict().mark();
    p.str("f").tensor("FloatStorage", "0", 3, 0, &[3], &[1]);
    p.str("i").tensor("LongStorage", "1", 2, 0, &[2], &[1]);
    p.str("h").tensor("HalfStorage", "2", 1, 0, &[], &[]);
    p.setitems();
    let floats: Vec<u8> = [1.0f32, -2.5, 3.25].iter().flat_map(|v| v.to_be_bytes()).collect();
    let longs: Vec<u8> = [7i64, -1].iter().flat_map(|v| v.to_be_bytes()).collect();
    let half = half::f16::from_f32(0.5).to_be_bytes().to_vec();
    let ck = zip_checkpoint(p.stop(), &[("0", floats), ("1", longs), ("2", half)], Some("big"));
    let out = convert(&ck, &with_kind(Kind::Ganspace)).unwrap();
    assert_eq!(f32_values(&out.get("f").data), [1.0, -2.5, 3.25]);
    assert_eq!(
        out.get("i").data,
        [7i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()
    );
    assert_eq!(out.get("h").data, half::f16::from_f32(0.5).to_le_bytes());
}

#[test]
fn shared_storages_alias_identical_views_and_materialise_the_others() {
    let mut p = Pickle::new(2);
    p.empty_dict().mark();
    p.str("a").tensor("FloatStorage", "0", 6, 0, &[2, 3], &[3, 1]);
    // A distinct tensor object with the same view (what `state_dict()` yields for a shared
    // module): an alias of `a`.
    p.str("b").tensor("FloatStorage", "0", 6, 0, &[2, 3], &[3, 1]);
    p.str("t").tensor("FloatStorage", "0", 6, 0, &[3, 2], &[1, 3]); // transpose
    p.str("row").tensor("FloatStorage", "0", 6, 3, &[3], &[1]); // slice with offset
    p.str("bcast").tensor("FloatStorage", "0", 6, 0, &[2, 3], &[0, 1]); // expand
    p.setitems();
    let ck = zip_checkpoint(p.stop(), &[("0", f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))], None);

    assert!(matches!(
        convert(&ck, &ConvertOptions::default()),
        Err(ConvertError::UnknownKind(_))
    ));
    let out = convert(&ck, &with_kind(Kind::Ganspace)).unwrap();
    assert_eq!(
        out.aliases().into_iter().collect::<Vec<_>>(),
        [("b".to_string(), "a".to_string())]
    );
    assert!(!out.tensors.contains_key("b"));
    assert_eq!(f32_values(&out.get("b").data), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(f32_values(&out.get("t").data), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(out.get("t").shape, [3, 2]);
    assert_eq!(f32_values(&out.get("row").data), [3.0, 4.0, 5.0]);
    assert_eq!(f32_values(&out.get("bcast").data), [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
}

#[test]
fn namespace_options_and_scalars() {
    let mut p = Pickle::new(2);
    p.empty_dict().mark();
    p.str("state_dict").ordered_dict().mark();
    p.str("encoder.linear.weight")
        .tensor("FloatStorage", "0", 2, 0, &[2], &[1]);
    p.setitems();
    p.str("opts")
        .global("argparse", "Namespace")
        .raw(b")\x81")
        .empty_dict()
        .mark();
    p.str("lr")
        .float(0.5)
        .str("name")
        .str("x")
        .str("size")
        .int(1 << 40)
        .str("nan")
        .float(f64::NAN);
    p.setitems().raw(b"b");
    p.str("global_step").int(1000).str("best_val_loss").float(0.25);
    p.setitems();
    let ck = zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0, 2.0]))], None);
    let out = convert(&ck, &ConvertOptions::default()).unwrap();
    assert_eq!(out.metadata["kind"], "w-encoder");
    assert_eq!(
        out.meta_json("opts"),
        serde_json::json!({"lr": 0.5, "name": "x", "size": 1u64 << 40, "nan": "nan"})
    );
    assert_eq!(
        out.meta_json("scalars"),
        serde_json::json!({"global_step": 1000, "best_val_loss": 0.25})
    );
    assert_eq!(
        out.tensors.keys().collect::<Vec<_>>(),
        ["state_dict/encoder.linear.weight"]
    );
}

#[test]
fn rosinality_args_become_opts() {
    let mut p = Pickle::new(2);
    p.empty_dict().mark();
    p.str("g_ema")
        .ordered_dict()
        .mark()
        .str("conv1.conv.weight")
        .tensor("FloatStorage", "0", 1, 0, &[1], &[1])
        .setitems();
    p.str("args")
        .global("argparse", "Namespace")
        .raw(b")\x81")
        .empty_dict()
        .mark()
        .str("size")
        .int(256)
        .setitems()
        .raw(b"b");
    p.setitems();
    let ck = zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0]))], None);
    let out = convert(&ck, &ConvertOptions::default()).unwrap();
    assert_eq!(out.metadata["kind"], "stylegan2");
    assert_eq!(out.meta_json("opts"), serde_json::json!({"size": 256}));
    assert!(out.tensors.contains_key("g_ema/conv1.conv.weight"));
}

#[test]
fn protocol_4_parameters() {
    // FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, and tensors wrapped as nn.Parameter both
    // ways torch does it.
    let mut p = Pickle::new(4);
    p.raw(b"\x95").raw(&0u64.to_le_bytes());
    p.raw(b"\x8c\x0ctorch._utils\x94\x8c\x12_rebuild_parameter\x94\x93\x940"); // memo 2, popped
    p.raw(b"}\x94(");
    p.raw(b"\x8c\x01w\x94");
    p.raw(b"h\x02(")
        .tensor("FloatStorage", "0", 2, 0, &[2], &[1])
        .raw(b"\x88")
        .ordered_dict()
        .raw(b"tR");
    p.raw(b"\x8c\x01v\x94");
    p.global("torch._tensor", "_rebuild_from_type_v2").mark();
    p.global("torch._utils", "_rebuild_tensor_v2")
        .global("torch.nn.parameter", "Parameter");
    p.mark()
        .mark()
        .str("storage")
        .global("torch", "FloatStorage")
        .str("0")
        .str("cpu")
        .int(2)
        .tuple()
        .raw(b"Q");
    p.int(1)
        .int_tuple(&[1])
        .int_tuple(&[1])
        .raw(b"\x89")
        .ordered_dict()
        .tuple();
    p.empty_dict().tuple().raw(b"R");
    p.raw(b"u");
    let ck = zip_checkpoint(p.stop(), &[("0", f32_bytes(&[5.0, 6.0]))], None);
    let out = convert(&ck, &with_kind(Kind::Ganspace)).unwrap();
    assert_eq!(f32_values(&out.get("w").data), [5.0, 6.0]);
    assert_eq!(f32_values(&out.get("v").data), [6.0]);
}

#[test]
fn legacy_storage_views() {
    let mut main = Pickle::new(2);
    main.empty_dict().mark().str("state_dict").empty_dict().mark();
    main.str("hypernet.full")
        .legacy_tensor("FloatStorage", "root", 10, None, (0, &[10], &[1]));
    main.str("hypernet.view")
        .legacy_tensor("FloatStorage", "root", 10, Some(("v", 4, 6)), (1, &[2, 2], &[2, 1]));
    main.setitems().setitems();
    let data: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let ck = legacy_checkpoint(main.stop(), &[("root", f32_bytes(&data), 4)]);
    let out = convert(&ck, &ConvertOptions::default()).unwrap();
    assert_eq!(out.metadata["kind"], "hyperstyle");
    assert_eq!(f32_values(&out.get("state_dict/hypernet.full").data), data);
    assert_eq!(
        f32_values(&out.get("state_dict/hypernet.view").data),
        [5.0, 6.0, 7.0, 8.0]
    );

    // A view reaching past its storage view is refused.
    let mut main = Pickle::new(2);
    main.empty_dict()
        .mark()
        .str("x")
        .legacy_tensor("FloatStorage", "root", 10, Some(("v", 4, 6)), (4, &[3], &[1]))
        .setitems();
    let ck = legacy_checkpoint(main.stop(), &[("root", f32_bytes(&data), 4)]);
    assert!(matches!(
        convert(&ck, &with_kind(Kind::Ganspace)),
        Err(ConvertError::InvalidTensor { .. })
    ));
}

fn single_tensor(shape: &[u64], stride: &[u64], offset: u64, storage_len: usize) -> Vec<u8> {
    let mut p = Pickle::new(2);
    p.empty_dict()
        .mark()
        .str("x")
        .tensor("FloatStorage", "0", storage_len as u64, offset, shape, stride)
        .setitems();
    zip_checkpoint(p.stop(), &[("0", f32_bytes(&vec![1.0; storage_len]))], None)
}

#[test]
fn views_outside_their_storage_are_refused() {
    let err = convert(&single_tensor(&[2, 3], &[3, 1], 1, 6), &with_kind(Kind::Ganspace)).unwrap_err();
    assert!(
        matches!(&err, ConvertError::InvalidTensor { key, .. } if key == "x"),
        "{err:?}"
    );
    let err = convert(
        &single_tensor(&[1 << 62, 8], &[1 << 62, 1], 0, 6),
        &with_kind(Kind::Ganspace),
    )
    .unwrap_err();
    assert!(matches!(err, ConvertError::InvalidTensor { .. }), "{err:?}");
}

#[test]
fn broadcast_bombs_are_refused() {
    let err = convert(&single_tensor(&[1 << 40], &[0], 0, 1), &with_kind(Kind::Ganspace)).unwrap_err();
    assert!(matches!(err, ConvertError::TooLarge(_)), "{err:?}");
}

#[test]
fn storage_shorter_than_declared_is_refused() {
    let mut p = Pickle::new(2);
    p.empty_dict()
        .mark()
        .str("x")
        .tensor("FloatStorage", "0", 4, 0, &[4], &[1])
        .setitems();
    let ck = zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0, 2.0]))], None);
    assert!(matches!(
        convert(&ck, &with_kind(Kind::Ganspace)),
        Err(ConvertError::MalformedZip(_))
    ));
    let ck = zip_checkpoint(
        {
            let mut p = Pickle::new(2);
            p.empty_dict()
                .mark()
                .str("x")
                .tensor("FloatStorage", "9", 1, 0, &[1], &[1])
                .setitems();
            p.stop()
        },
        &[],
        None,
    );
    assert!(matches!(
        convert(&ck, &with_kind(Kind::Ganspace)),
        Err(ConvertError::MalformedZip(_))
    ));
}

#[test]
fn compressed_entries_are_unsupported() {
    let mut p = Pickle::new(2);
    p.raw(b"N");
    let zip = zip_archive(&[("archive/data.pkl".to_string(), p.stop())], 8);
    assert!(matches!(
        convert(&zip, &ConvertOptions::default()),
        Err(ConvertError::Unsupported(_))
    ));
}

#[test]
fn unsupported_opcodes_are_named() {
    let ck = zip_checkpoint(b"\x80\x02I1\n.".to_vec(), &[], None);
    match convert(&ck, &ConvertOptions::default()) {
        Err(ConvertError::UnsupportedOpcode { name, opcode, offset }) => {
            assert_eq!((name, opcode, offset), ("INT", b'I', 2))
        }
        other => panic!("{other:?}"),
    }
    let ck = zip_checkpoint(b"\x80\x02\xff.".to_vec(), &[], None);
    assert!(matches!(
        convert(&ck, &ConvertOptions::default()),
        Err(ConvertError::UnsupportedOpcode { name: "unknown", .. })
    ));
}

#[test]
fn dangerous_globals_are_refused_however_they_are_named() {
    let cases: [&[u8]; 3] = [
        b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.",
        b"\x80\x02ctorch.storage\n_load_from_bytes\n.",
        b"\x80\x02csubprocess\nPopen\n.",
    ];
    for pickle in cases {
        let ck = zip_checkpoint(pickle.to_vec(), &[], None);
        assert!(matches!(
            convert(&ck, &ConvertOptions::default()),
            Err(ConvertError::ForbiddenGlobal { .. })
        ));
    }
    // Allowed globals cannot be abused as callables either.
    let ck = zip_checkpoint(b"\x80\x02ctorch\nFloatStorage\n)R.".to_vec(), &[], None);
    assert!(matches!(
        convert(&ck, &ConvertOptions::default()),
        Err(ConvertError::MalformedPickle { .. })
    ));
}

#[test]
fn colliding_keys_are_refused() {
    let mut p = Pickle::new(2);
    p.empty_dict().mark();
    p.str("a/b").tensor("FloatStorage", "0", 2, 0, &[1], &[1]);
    p.str("a")
        .empty_dict()
        .str("b")
        .tensor("FloatStorage", "0", 2, 1, &[1], &[1])
        .raw(b"s");
    p.setitems();
    let ck = zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0, 2.0]))], None);
    assert!(matches!(convert(&ck, &with_kind(Kind::Ganspace)), Err(ConvertError::DuplicateKey(k)) if k == "a/b"));
}

#[test]
fn self_referencing_containers_are_refused() {
    // l = []; l.append(l)
    let ck = zip_checkpoint(b"\x80\x02]q\x00h\x00a.".to_vec(), &[], None);
    assert!(matches!(
        convert(&ck, &with_kind(Kind::Ganspace)),
        Err(ConvertError::TooLarge(_))
    ));
}

#[test]
fn file_conversion_of_a_synthetic_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("direction.pt");
    let mut p = Pickle::new(2);
    p.tensor("FloatStorage", "0", 4, 0, &[1, 4], &[4, 1]);
    std::fs::write(
        &input,
        zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0]))], None),
    )
    .unwrap();
    let output = dir.path().join("nested").join("direction.safetensors");
    // A missing output directory is an I/O error, and leaves nothing behind.
    assert!(matches!(
        convert_file(&input, &output, &ConvertOptions::default()),
        Err(ConvertError::Io { .. })
    ));
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    convert_file(&input, &output, &ConvertOptions::default()).unwrap();
    let out = Output::read(&output);
    assert_eq!(out.metadata["source_file"], "direction.pt");
    assert_eq!(f32_values(&out.get("tensor").data), [1.0, 2.0, 3.0, 4.0]);
}
