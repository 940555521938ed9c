//! Helpers shared by the integration tests: fixture paths, reading converted files, and builders
//! for synthetic checkpoints (pickle opcodes, stored zip archives, legacy streams).

#![allow(dead_code)] // each test file uses a different subset

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use serde_json::Value as Json;

/// Path of a file in `tests/fixtures/pt/` of the workspace.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/pt")
        .join(name)
}

/// `expected.json`.
pub fn expected_json() -> Json {
    serde_json::from_slice(&std::fs::read(fixture("expected.json")).unwrap()).unwrap()
}

/// One tensor of a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// A parsed safetensors file.
#[derive(Debug)]
pub struct Output {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
    /// `(key, start offset, element size)` of every tensor.
    pub offsets: Vec<(String, usize, usize)>,
    pub header_len: usize,
}

impl Output {
    pub fn parse(bytes: &[u8]) -> Output {
        let (header_len, meta) = SafeTensors::read_metadata(bytes).expect("valid safetensors");
        let st = SafeTensors::deserialize(bytes).unwrap();
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            tensors.insert(
                name,
                Tensor {
                    dtype: format!("{:?}", view.dtype()),
                    shape: view.shape().to_vec(),
                    data: view.data().to_vec(),
                },
            );
        }
        let offsets = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, info.data_offsets.0, info.dtype.bitsize() / 8))
            .collect();
        Output {
            tensors,
            metadata: meta.metadata().clone().unwrap_or_default(),
            offsets,
            header_len,
        }
    }

    pub fn read(path: &Path) -> Output {
        Output::parse(&std::fs::read(path).unwrap())
    }

    /// The `aliases` metadata entry (empty if absent, as in `expected.safetensors`).
    pub fn aliases(&self) -> BTreeMap<String, String> {
        self.metadata
            .get("aliases")
            .map(|a| serde_json::from_str(a).unwrap())
            .unwrap_or_default()
    }

    /// A tensor by key, following aliases.
    pub fn get(&self, key: &str) -> &Tensor {
        let aliases = self.aliases();
        let canonical = aliases.get(key).map(String::as_str).unwrap_or(key);
        self.tensors
            .get(canonical)
            .unwrap_or_else(|| panic!("no tensor `{key}`"))
    }

    pub fn meta_json(&self, key: &str) -> Json {
        serde_json::from_str(&self.metadata[key]).unwrap()
    }
}

/// `expected.safetensors`.
pub fn expected() -> Output {
    Output::read(&fixture("expected.safetensors"))
}

/// Writes pickle opcodes (protocol 2 unless stated), the way `torch.save` does.
#[derive(Default)]
pub struct Pickle {
    pub bytes: Vec<u8>,
}

impl Pickle {
    pub fn new(protocol: u8) -> Self {
        Pickle {
            bytes: vec![0x80, protocol],
        }
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes.push(b'X');
        self.bytes.extend((s.len() as u32).to_le_bytes());
        self.raw(s.as_bytes())
    }
    pub fn int(&mut self, i: i64) -> &mut Self {
        if (0..256).contains(&i) {
            self.raw(&[b'K', i as u8])
        } else {
            self.bytes.extend([0x8a, 8]);
            self.raw(&i.to_le_bytes())
        }
    }
    pub fn float(&mut self, f: f64) -> &mut Self {
        self.bytes.push(b'G');
        self.raw(&f.to_be_bytes())
    }
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.raw(b"c")
            .raw(module.as_bytes())
            .raw(b"\n")
            .raw(name.as_bytes())
            .raw(b"\n")
    }
    pub fn mark(&mut self) -> &mut Self {
        self.raw(b"(")
    }
    pub fn tuple(&mut self) -> &mut Self {
        self.raw(b"t")
    }
    pub fn int_tuple(&mut self, items: &[u64]) -> &mut Self {
        self.mark();
        for &i in items {
            self.int(i as i64);
        }
        self.tuple()
    }
    pub fn empty_dict(&mut self) -> &mut Self {
        self.raw(b"}")
    }
    pub fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").raw(b")R")
    }
    pub fn setitems(&mut self) -> &mut Self {
        self.raw(b"u")
    }
    pub fn stop(&mut self) -> Vec<u8> {
        self.bytes.push(b'.');
        std::mem::take(&mut self.bytes)
    }

    /// `_rebuild_tensor_v2` with a zip-style persistent id.
    pub fn tensor(
        &mut self,
        storage_class: &str,
        key: &str,
        numel: u64,
        offset: u64,
        shape: &[u64],
        stride: &[u64],
    ) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2")
            .mark()
            .mark()
            .str("storage")
            .global("torch", storage_class);
        self.str(key).str("cpu").int(numel as i64).tuple().raw(b"Q");
        self.int(offset as i64)
            .int_tuple(shape)
            .int_tuple(stride)
            .raw(b"\x89")
            .ordered_dict()
            .tuple()
            .raw(b"R")
    }

    /// `_rebuild_tensor_v2` with a legacy persistent id, optionally a storage view
    /// `(view_key, offset, size)`; `view` is the tensor's `(offset, shape, stride)`.
    pub fn legacy_tensor(
        &mut self,
        storage_class: &str,
        key: &str,
        numel: u64,
        storage_view: Option<(&str, u64, u64)>,
        view: (u64, &[u64], &[u64]),
    ) -> &mut Self {
        let (offset, shape, stride) = view;
        self.global("torch._utils", "_rebuild_tensor_v2")
            .mark()
            .mark()
            .str("storage")
            .global("torch", storage_class);
        self.str(key).str("cpu").int(numel as i64);
        match storage_view {
            None => self.raw(b"N"),
            Some((k, o, n)) => self.mark().str(k).int(o as i64).int(n as i64).tuple(),
        };
        self.tuple().raw(b"Q");
        self.int(offset as i64)
            .int_tuple(shape)
            .int_tuple(stride)
            .raw(b"\x89")
            .ordered_dict()
            .tuple()
            .raw(b"R")
    }
}

/// A stored (uncompressed) zip archive, laid out like PyTorch's: sizes only in the central
/// directory. `method` overrides the compression method field of every entry.
pub fn zip_archive(files: &[(String, Vec<u8>)], method: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u32;
        out.extend(b"PK\x03\x04");
        out.extend(20u16.to_le_bytes());
        out.extend(0x0808u16.to_le_bytes());
        out.extend(method.to_le_bytes());
        out.extend([0u8; 16]);
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(data);
        central.extend(b"PK\x01\x02");
        central.extend([0u8; 4]);
        central.extend(0x0808u16.to_le_bytes());
        central.extend(method.to_le_bytes());
        central.extend([0u8; 8]);
        central.extend((data.len() as u32).to_le_bytes());
        central.extend((data.len() as u32).to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0u8; 12]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(b"PK\x05\x06");
    out.extend([0u8; 4]);
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// A `torch.save` zip checkpoint named `archive` with the given pickle and storages.
pub fn zip_checkpoint(pickle: Vec<u8>, storages: &[(&str, Vec<u8>)], byteorder: Option<&str>) -> Vec<u8> {
    let mut files = vec![("archive/data.pkl".to_string(), pickle)];
    if let Some(order) = byteorder {
        files.push(("archive/byteorder".to_string(), order.as_bytes().to_vec()));
    }
    for (key, data) in storages {
        files.push((format!("archive/data/{key}"), data.clone()));
    }
    files.push(("archive/version".to_string(), b"3\n".to_vec()));
    zip_archive(&files, 0)
}

/// A legacy `torch.save` stream: magic, version, sys info, `main` pickle, key list, records.
pub fn legacy_checkpoint(main: Vec<u8>, storages: &[(&str, Vec<u8>, usize)]) -> Vec<u8> {
    let mut out = vec![
        0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    out.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']);
    let mut sys = Pickle::new(2);
    sys.empty_dict().mark().str("little_endian").raw(b"\x88").setitems();
    out.extend(sys.stop());
    out.extend(main);
    let mut keys = Pickle::new(2);
    keys.raw(b"]").mark();
    for (key, _, _) in storages {
        keys.str(key);
    }
    keys.raw(b"e");
    out.extend(keys.stop());
    for (_, data, element_size) in storages {
        out.extend(((data.len() / element_size) as u64).to_le_bytes());
        out.extend(data);
    }
    out
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// f32 values from little-endian bytes.
pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}
