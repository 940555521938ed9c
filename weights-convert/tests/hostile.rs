//! Crafted hostile checkpoints, built in memory: each is refused with a typed error, quickly and
//! within a memory bound proportional to its size, instead of overflowing the stack, hanging or
//! exhausting memory.
//!
//! Four classes: deep nesting (stack overflows when building, dropping or formatting values),
//! values shared through the memo (exponentially large trees, formatted or walked), floods of
//! cheap opcodes (memory far beyond the file's size), and many strided views of one storage
//! (input bytes read far beyond the file's size).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use common::{f32_bytes, legacy_checkpoint, zip_checkpoint, Pickle};
use weights_convert::pickle::{MAX_MARKS, MAX_STACK_LEN, MAX_TUPLE_DEPTH, MEMORY_FLOOR, MEMORY_PER_PICKLE_BYTE};
use weights_convert::{convert_bytes, inspect_bytes, read_checkpoint, ConvertError, ConvertOptions, Kind};

// ---------------------------------------------------------------------------------------------
// Measuring: a global allocator that tracks, per thread, the bytes currently allocated and their
// peak (tests run on parallel threads; each conversion runs on its test's thread).

struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(delta: isize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are recorded.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How long refusing a crafted input may take: a bound that only a hang or a blow-up can reach,
/// not a benchmark. The fixed converter takes milliseconds (the slowest case, 1.1 million memo
/// entries, ~0.25 s in release); before the limits, these inputs aborted on a stack overflow or
/// ran for minutes. The slack covers a loaded machine and unoptimised builds.
const TIME_LIMIT: Duration = Duration::from_secs(if cfg!(debug_assertions) { 60 } else { 15 });

/// What running the converter on a crafted input cost.
struct Cost {
    elapsed: Duration,
    /// Peak bytes allocated above what was allocated before the call.
    peak: usize,
}

/// Runs `f`, measuring its wall time and peak memory on this thread.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    let peak = (PEAK.with(Cell::get) - base).max(0) as usize;
    (out, Cost { elapsed, peak })
}

/// The unpickler's documented memory bound for a pickle of `len` bytes, doubled for the growth
/// slack of vectors and hash tables, plus the pickle itself (read into memory) and 8 MiB for
/// everything else a conversion allocates.
fn memory_bound(len: usize) -> usize {
    let budget = MEMORY_PER_PICKLE_BYTE as usize * len + MEMORY_FLOOR as usize;
    2 * budget + len + (8 << 20)
}

/// Converts `bytes` (kind forced, so detection is not what refuses it) and also lists it;
/// both must fail the same way, quickly, in bounded memory, writing nothing, with a short
/// message. Set `HOSTILE_VERBOSE` to print each case's time, peak memory and message.
fn refused(bytes: &[u8]) -> (ConvertError, Cost) {
    let options = ConvertOptions {
        kind: Some(Kind::Ganspace),
        ..Default::default()
    };
    let mut out = Vec::new();
    let (result, cost) = measure(|| convert_bytes(bytes, "hostile.pt", &options, &mut out));
    let err = match result {
        Ok(summary) => panic!("a hostile input was converted: {summary:?}"),
        Err(e) => e,
    };
    assert!(out.is_empty(), "nothing may be written");
    let (listed, list_cost) = measure(|| inspect_bytes(bytes));
    let listed = listed.expect_err("a hostile input was listed");
    assert_eq!(
        std::mem::discriminant(&listed),
        std::mem::discriminant(&err),
        "listing fails as converting does: {listed} vs {err}"
    );
    for c in [&cost, &list_cost] {
        assert!(c.elapsed < TIME_LIMIT, "took {:?}: {err}", c.elapsed);
        assert!(
            c.peak <= memory_bound(bytes.len()),
            "peak memory {} bytes for {} input bytes: {err}",
            c.peak,
            bytes.len()
        );
    }
    let message = err.to_string();
    if std::env::var_os("HOSTILE_VERBOSE").is_some() {
        eprintln!(
            "[{} B] {:?} {} MB | {}",
            bytes.len(),
            cost.elapsed,
            cost.peak >> 20,
            message
        );
    }
    assert!(
        message.len() < 600,
        "error messages stay short: {} bytes",
        message.len()
    );
    (err, cost)
}

fn too_large(err: &ConvertError, words: &str) {
    assert!(
        matches!(err, ConvertError::TooLarge(m) if m.contains(words)),
        "expected TooLarge mentioning `{words}`, got {err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Pickle fragments.

/// `LONG_BINGET i`.
fn get(i: u32) -> Vec<u8> {
    let mut v = vec![b'j'];
    v.extend(i.to_le_bytes());
    v
}

/// A zip checkpoint whose pickle is `body` after a protocol-4 header, then `STOP`.
fn zip_of(body: &[u8]) -> Vec<u8> {
    let mut p = Pickle::new(4);
    p.raw(body);
    zip_checkpoint(p.stop(), &[], None)
}

/// `T(levels)` where `T(0) = ()` and `T(i + 1) = (T(i), T(i))`: 2 bytes a level, 2^levels leaves.
fn doubling_tuple(levels: usize) -> Vec<u8> {
    let mut v = vec![b')'];
    for _ in 0..levels {
        v.extend(b"2\x86"); // DUP, TUPLE2
    }
    v
}

/// `{key: value}` as a top-level dict with a state dict, so that planning reaches `value`.
fn top_level(key: &str, value: &[u8]) -> Vec<u8> {
    let mut p = Pickle::new(4);
    p.empty_dict().mark().str(key).raw(value);
    p.str("state_dict").empty_dict().setitems();
    zip_checkpoint(p.stop(), &[], None)
}

// ---------------------------------------------------------------------------------------------
// 1. Deep nesting.

#[test]
fn a_million_nested_one_item_tuples_are_refused() {
    // `()` wrapped in a one-item tuple a million times: 1 MB. Dropping (or formatting) such a
    // value recursively overflows the stack; it must never be built.
    let mut body = vec![b')'];
    body.extend(std::iter::repeat_n(0x85u8, 1_000_000)); // TUPLE1
    let (err, _) = refused(&zip_of(&body));
    too_large(&err, "nested");
    assert!(err.to_string().contains(&MAX_TUPLE_DEPTH.to_string()), "{err}");

    // Same as the legacy format's main pickle.
    let mut main = Pickle::new(2);
    main.raw(&body);
    let (err, _) = refused(&legacy_checkpoint(main.stop(), &[]));
    too_large(&err, "nested");
}

#[test]
fn nested_marks_are_refused() {
    // MARK a million times then TUPLE a million times.
    let mut body = vec![b'('; 1_000_000];
    body.extend(std::iter::repeat_n(b't', 1_000_000));
    let (err, _) = refused(&zip_of(&body));
    too_large(&err, &MAX_MARKS.to_string());
}

#[test]
fn tuples_nested_through_the_memo_are_refused() {
    // MARK, the previous tuple from the memo, TUPLE, MEMOIZE, POP: the stack stays empty while the
    // nesting grows by one a level (100 000 levels, 900 KB).
    let mut body = b")\x940".to_vec();
    for i in 0..100_000u32 {
        body.push(b'(');
        body.extend(get(i));
        body.extend(b"t\x940");
    }
    body.extend(get(100_000));
    let (err, _) = refused(&zip_of(&body));
    too_large(&err, "nested");
}

#[test]
fn tuples_may_nest_up_to_the_limit() {
    // Exactly MAX_TUPLE_DEPTH levels are built, and shown briefly; one more is refused.
    let mut body = vec![b')'];
    body.extend(std::iter::repeat_n(0x85u8, MAX_TUPLE_DEPTH as usize - 1));
    let ck = read_checkpoint(zip_of(&body).as_slice()).unwrap();
    assert!(format!("{:?}", ck.root).len() < 300);
    let mut body = vec![b')'];
    body.extend(std::iter::repeat_n(0x85u8, MAX_TUPLE_DEPTH as usize));
    too_large(&read_checkpoint(zip_of(&body).as_slice()).unwrap_err(), "nested");
}

/// A checkpoint whose options are 100 000 lists nested through the memo (each level optionally
/// wrapped in a one-item tuple): containers live in a flat arena and do not recurse when dropped,
/// and walking them stops at the depth limit.
fn nested_containers(wrap_in_tuples: bool) -> Vec<u8> {
    let mut p = Pickle::new(4);
    p.raw(b"]\x940");
    for i in 0..100_000u32 {
        p.raw(b"]").raw(&get(i)).raw(b"a"); // a new list holding the previous level
        if wrap_in_tuples {
            p.raw(b"\x85"); // TUPLE1
        }
        p.raw(b"\x940");
    }
    p.empty_dict().mark().str("opts").raw(&get(100_000));
    p.str("state_dict").empty_dict().setitems();
    zip_checkpoint(p.stop(), &[], None)
}

#[test]
fn deeply_nested_lists_and_tuples_are_refused() {
    for wrap in [false, true] {
        let (err, _) = refused(&nested_containers(wrap));
        too_large(&err, "deeper than 64");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Values shared through the memo: exponentially large trees from a few bytes.

#[test]
fn exponentially_shared_tuples_are_refused_at_any_depth() {
    // 100 doublings: deeper than tuples may nest.
    let (err, _) = refused(&top_level("opts", &doubling_tuple(100)));
    too_large(&err, "nested");
    // 60 doublings (2^60 leaves from 120 bytes) in the options, as a scalar, as the root: every
    // walk stops early.
    for key in ["opts", "global_step"] {
        let (err, _) = refused(&top_level(key, &doubling_tuple(60)));
        assert!(matches!(err, ConvertError::TooLarge(_)), "{err:?}");
    }
    let (err, _) = refused(&zip_of(&doubling_tuple(60)));
    assert!(matches!(err, ConvertError::TooLarge(_)), "{err:?}");
}

#[test]
fn shared_values_are_described_briefly() {
    // `Debug` of a 2^60-leaf value is bounded.
    let ck = read_checkpoint(zip_of(&doubling_tuple(60)).as_slice()).unwrap();
    let (text, cost) = measure(|| format!("{ck:?}"));
    assert!(text.len() < 1000, "{} bytes", text.len());
    assert!(cost.elapsed < TIME_LIMIT);

    // Error messages that show a value: a persistent id, a tensor offset, the legacy version.
    let mut body = doubling_tuple(60);
    body.push(b'Q'); // BINPERSID
    let (err, _) = refused(&zip_of(&body));
    assert!(matches!(err, ConvertError::MalformedPickle { .. }), "{err:?}");
    assert!(err.to_string().contains("persistent id (((("), "{err}");

    let mut p = Pickle::new(2);
    p.global("torch._utils", "_rebuild_tensor_v2").mark().mark();
    p.str("storage")
        .global("torch", "FloatStorage")
        .str("0")
        .str("cpu")
        .int(1)
        .tuple()
        .raw(b"Q");
    p.raw(&doubling_tuple(60))
        .raw(b"))")
        .raw(b"\x89")
        .empty_dict()
        .tuple()
        .raw(b"R");
    let ck = zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0]))], None);
    let (err, _) = refused(&ck);
    assert!(err.to_string().contains("storage offset must be"), "{err}");

    let mut legacy = legacy_checkpoint(Pickle::new(2).raw(b"N").stop(), &[]);
    let mut version = vec![0x80, 2];
    version.extend(doubling_tuple(60));
    version.push(b'.');
    legacy.splice(15..21, version);
    let (err, _) = refused(&legacy);
    assert!(matches!(err, ConvertError::Unsupported(_)), "{err:?}");

    // A 4 MB string as a persistent id is shown by its first bytes.
    let mut p = Pickle::new(2);
    p.str(&"x".repeat(4 << 20)).raw(b"Q");
    let (err, _) = refused(&zip_checkpoint(p.stop(), &[], None));
    assert!(err.to_string().contains("xxxx…"), "{err}");
}

#[test]
fn shared_tuples_as_dict_keys_are_refused() {
    // Key (T, T) with T 16 times as wide each level: 16^6 leaves.
    let mut wide = vec![b')'];
    for i in 0..6u8 {
        wide.extend(b"\x940("); // MEMOIZE, POP, MARK
        for _ in 0..16 {
            wide.extend([b'h', i]);
        }
        wide.push(b't');
    }
    for key in [doubling_tuple(60), wide] {
        // As an option name and as a tensor key.
        for container in ["opts", "state_dict"] {
            let mut p = Pickle::new(4);
            p.empty_dict()
                .mark()
                .str(container)
                .empty_dict()
                .raw(&key)
                .int(1)
                .raw(b"s");
            p.str("other").empty_dict().setitems();
            let (err, _) = refused(&zip_checkpoint(p.stop(), &[], None));
            too_large(&err, "key is longer than");
        }
    }
}

#[test]
fn shared_dicts_multiplying_tensor_paths_are_refused() {
    // D(0) = {'w': tensor}; D(i + 1) = {'a': D(i), 'b': D(i)}: 2^40 tensor paths.
    let mut p = Pickle::new(4);
    p.empty_dict().mark().str("state_dict");
    p.empty_dict()
        .str("w")
        .tensor("FloatStorage", "0", 1, 0, &[1], &[1])
        .raw(b"s");
    p.raw(b"r\x00\x00\x00\x00"); // LONG_BINPUT 0: D(0)
    p.raw(b"0");
    for i in 0..40u32 {
        p.empty_dict()
            .mark()
            .str("a")
            .raw(&get(i))
            .str("b")
            .raw(&get(i))
            .setitems();
        p.raw(b"r").raw(&(i + 1).to_le_bytes()).raw(b"0");
    }
    p.raw(&get(40)).setitems();
    let (err, _) = refused(&zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0]))], None));
    too_large(&err, "");
}

#[test]
fn long_keys_and_paths_are_refused() {
    // A 2 KB key.
    let long = "k".repeat(2048);
    let mut p = Pickle::new(2);
    p.empty_dict().mark().str("state_dict").empty_dict();
    p.str(&long)
        .tensor("FloatStorage", "0", 1, 0, &[1], &[1])
        .raw(b"s")
        .setitems();
    let (err, _) = refused(&zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0]))], None));
    too_large(&err, "key is longer than");

    // Ten nested 200-byte keys: a 2 KB path.
    let part = "p".repeat(200);
    let mut p = Pickle::new(2);
    p.empty_dict().mark().str("state_dict");
    for _ in 0..10 {
        p.empty_dict().str(&part);
    }
    p.tensor("FloatStorage", "0", 1, 0, &[1], &[1]);
    for _ in 0..10 {
        p.raw(b"s");
    }
    p.setitems();
    let (err, _) = refused(&zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0]))], None));
    too_large(&err, "tensor key is longer than");

    // A 1 KB storage key.
    let mut p = Pickle::new(2);
    p.tensor("FloatStorage", &"0".repeat(1024), 1, 0, &[1], &[1]);
    let (err, _) = refused(&zip_checkpoint(p.stop(), &[], None));
    too_large(&err, "storage key");
}

#[test]
fn a_shared_string_repeated_in_the_options_is_refused() {
    // opts = [s] * 200 000 with s a 1 MB string (1.4 MB of pickle, 200 GB as JSON).
    let mut p = Pickle::new(4);
    p.str(&"s".repeat(1 << 20)).raw(b"\x940"); // memo 0
    p.raw(b"]\x94"); // the list, memo 1
    for _ in 0..200 {
        p.mark();
        for _ in 0..1000 {
            p.raw(b"h\x00");
        }
        p.raw(b"e");
    }
    p.raw(b"0");
    p.empty_dict().mark().str("opts").raw(b"h\x01");
    p.str("state_dict").empty_dict().setitems();
    let (err, _) = refused(&zip_checkpoint(p.stop(), &[], None));
    too_large(&err, "");
}

#[test]
fn repeated_work_on_a_shared_string_is_charged() {
    let big = "d".repeat(1 << 20);
    // torch.device(s, 0) on a memoised 1 MB string, 100 000 times.
    let mut p = Pickle::new(4);
    p.global("torch", "device")
        .raw(b"\x94")
        .str(&big)
        .int(0)
        .raw(b"\x86\x94");
    for _ in 0..100_000 {
        p.raw(b"h\x00h\x01R0");
    }
    p.raw(b"N");
    let (err, _) = refused(&zip_checkpoint(p.stop(), &[], None));
    too_large(&err, "bytes of values");

    // The same 1 MB string as the key of a dict entry, set 100 000 times (hashed each time).
    let mut p = Pickle::new(4);
    p.empty_dict().raw(b"\x94").str(&big).raw(b"\x940");
    for _ in 0..100_000 {
        p.raw(b"h\x01N").raw(b"s");
    }
    let (err, _) = refused(&zip_checkpoint(p.stop(), &[], None));
    too_large(&err, "bytes of values");
}

// ---------------------------------------------------------------------------------------------
// 3. Floods of cheap opcodes.

#[test]
fn floods_of_containers_are_refused_in_bounded_memory() {
    // 2 MB of EMPTY_DICT (~150 bytes of memory each), kept on the stack or popped at once.
    for body in [vec![b'}'; 2 << 20], b"}0".repeat(1 << 20), vec![b']'; 2 << 20]] {
        let (err, cost) = refused(&zip_of(&body));
        too_large(&err, "bytes of values");
        assert!(
            cost.peak < 4 * (MEMORY_FLOOR as usize) + 100 * body.len(),
            "{}",
            cost.peak
        );
    }
}

#[test]
fn stack_mark_and_memo_floods_are_refused() {
    // NONE pushed MAX_STACK_LEN + 1 times.
    let (err, _) = refused(&zip_of(&vec![b'N'; MAX_STACK_LEN + 1]));
    too_large(&err, "stack");

    // MARK MAX_MARKS + 1 times.
    let (err, _) = refused(&zip_of(&vec![b'('; MAX_MARKS + 1]));
    too_large(&err, "MARK");

    // One value memoised 2 million times (MEMOIZE, 1 byte each).
    let mut body = vec![b'N'];
    body.extend(vec![0x94u8; 2_000_000]);
    let (err, _) = refused(&zip_of(&body));
    too_large(&err, "bytes of values");

    // LONG_BINPUT under 1.1 million distinct indices (5 bytes each).
    let mut body = vec![b'N'];
    for i in 0..1_100_000u32 {
        body.push(b'r');
        body.extend(i.to_le_bytes());
    }
    let (err, _) = refused(&zip_of(&body));
    too_large(&err, "memoises more than");
}

#[test]
fn numpy_arrays_copying_one_shared_buffer_are_refused_in_bounded_memory() {
    // One 1 MiB buffer memoised, then rebuilt into an array 5 000 times (each array's data is
    // copied out of the pickle: 5 GB for a 1.3 MB file without the budget).
    let elements = 1u64 << 18;
    let mut p = Pickle::new(3);
    p.raw(b"B")
        .raw(&(4 * elements as u32).to_le_bytes())
        .raw(&vec![0u8; 4 * elements as usize]);
    p.raw(b"q\x00").raw(b"0");
    p.global("numpy", "dtype").str("f4").raw(b"\x89\x88\x87R");
    p.mark()
        .int(3)
        .str("<")
        .raw(b"NNN")
        .raw(b"J\xff\xff\xff\xffJ\xff\xff\xff\xff")
        .int(0)
        .tuple()
        .raw(b"b");
    p.raw(b"q\x01").raw(b"0");
    for _ in 0..5_000 {
        p.global("numpy.core.multiarray", "_reconstruct")
            .global("numpy", "ndarray");
        p.int_tuple(&[0]).raw(b"C\x01b\x87R");
        p.mark()
            .int(1)
            .int_tuple(&[elements])
            .raw(b"h\x01\x89h\x00")
            .tuple()
            .raw(b"b0");
    }
    p.raw(b"N");
    let (err, _) = refused(&p.stop());
    too_large(&err, "bytes of values");
}

#[test]
fn floods_of_tensor_descriptions_are_refused() {
    // The same 64-dimensional view rebuilt 500 000 times from memoised arguments (6 bytes each,
    // ~1 KB of shape and strides each).
    let dims = vec![1u64; 64];
    let mut p = Pickle::new(4);
    p.global("torch._utils", "_rebuild_tensor_v2").raw(b"\x94");
    p.mark()
        .mark()
        .str("storage")
        .global("torch", "FloatStorage")
        .str("0")
        .str("cpu")
        .int(1);
    p.tuple()
        .raw(b"Q")
        .int(0)
        .int_tuple(&dims)
        .int_tuple(&dims)
        .raw(b"\x89")
        .empty_dict()
        .tuple()
        .raw(b"\x94");
    for _ in 0..500_000 {
        p.raw(b"h\x00h\x01R0");
    }
    p.raw(b"N");
    let (err, _) = refused(&zip_checkpoint(p.stop(), &[("0", f32_bytes(&[1.0]))], None));
    too_large(&err, "bytes of values");
}

// ---------------------------------------------------------------------------------------------
// 4. Bytes read from the input.

/// `views` distinct tensors over one storage of `numel` floats, each `(offset, shape, stride)`.
fn views_of_one_storage(numel: u64, views: &[(u64, Vec<u64>, Vec<u64>)]) -> Vec<u8> {
    let mut p = Pickle::new(2);
    p.empty_dict().mark();
    for (i, (offset, shape, stride)) in views.iter().enumerate() {
        p.str(&format!("v{i}"))
            .tensor("FloatStorage", "0", numel, *offset, shape, stride);
    }
    p.setitems();
    zip_checkpoint(p.stop(), &[("0", f32_bytes(&vec![0.5; numel as usize]))], None)
}

#[test]
fn many_strided_views_of_one_storage_are_refused() {
    // 400 two-element views spanning a 256 KB storage: 8 bytes of output each, but each reads
    // the whole span (100 MB in all from a 300 KB file).
    let numel = 1 << 16;
    let views: Vec<_> = (0..400).map(|i| (0, vec![2], vec![numel - 1 - i])).collect();
    let (err, _) = refused(&views_of_one_storage(numel, &views));
    too_large(&err, "read more than");

    // A few transposes and slices of one storage are fine.
    let views = vec![
        (0, vec![256, 256], vec![256, 1]),
        (0, vec![256, 256], vec![1, 256]),
        (0, vec![128, 256], vec![1, 256]),
        (4096, vec![1024], vec![1]),
    ];
    let mut out = Vec::new();
    let options = ConvertOptions {
        kind: Some(Kind::Ganspace),
        ..Default::default()
    };
    convert_bytes(&views_of_one_storage(numel, &views), "views.pt", &options, &mut out).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The limits leave real checkpoints alone.

#[test]
fn a_checkpoint_shaped_like_the_largest_real_one_is_accepted() {
    // HyperStyle FFHQ's layout: a state dict of 600 entries (36 of them the 4 shared-hypernet
    // tensors under other names), ~60 options, latent_avg, global_step, best_val_loss. Each
    // tensor has a one-element storage here; only the structure matters to the limits.
    let mut p = Pickle::new(2);
    p.empty_dict().mark().str("state_dict").ordered_dict().mark();
    let mut storages = Vec::new();
    let shared = ["w1", "b1", "w2", "b2"];
    for (i, name) in shared.iter().enumerate() {
        p.str(&format!("hypernet.shared_weight_hypernet.{name}"));
        p.tensor("FloatStorage", &i.to_string(), 1, 0, &[1], &[1]);
        storages.push((i.to_string(), f32_bytes(&[i as f32])));
    }
    for block in [0, 2, 3, 5, 6, 8, 9, 11, 12] {
        for (i, name) in shared.iter().enumerate() {
            p.str(&format!("hypernet.refinement_blocks.{block}.hypernet.{name}"));
            p.tensor("FloatStorage", &i.to_string(), 1, 0, &[1], &[1]);
        }
    }
    for i in 0..560 {
        let key = if i < 389 {
            format!("hypernet.refinement_blocks.{}.convs.{}.weight", i / 16, i % 16)
        } else {
            format!("decoder.convs.{}.conv.modulation.weight", i)
        };
        let storage = (storages.len()).to_string();
        p.str(&key)
            .tensor("FloatStorage", &storage, 1, 0, &[1, 1, 1, 1], &[1, 1, 1, 1]);
        storages.push((storage, f32_bytes(&[1.0])));
        if i % 500 == 499 {
            p.setitems().mark(); // torch batches SETITEMS by 1000 items
        }
    }
    p.setitems();
    p.str("opts").empty_dict().mark();
    for i in 0..60 {
        p.str(&format!("option_number_{i}"));
        match i % 4 {
            0 => p.str("/checkpoints/experiments/hyperstyle/ffhq_hypernet_iteration"),
            1 => p.int(i),
            2 => p.float(0.5),
            _ => p.raw(b"N"),
        };
    }
    p.setitems();
    let storage = storages.len().to_string();
    p.str("latent_avg")
        .tensor("FloatStorage", &storage, 18 * 512, 0, &[18, 512], &[512, 1]);
    storages.push((storage, f32_bytes(&vec![0.25; 18 * 512])));
    p.str("global_step").int(500_000).str("best_val_loss").raw(b"N");
    p.setitems();
    let storages: Vec<(&str, Vec<u8>)> = storages.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let ck = zip_checkpoint(p.stop(), &storages, None);

    let mut out = Vec::new();
    let summary = convert_bytes(&ck, "hyperstyle_ffhq.pt", &ConvertOptions::default(), &mut out).unwrap();
    assert_eq!(summary.kind, Kind::Hyperstyle);
    assert_eq!((summary.tensors, summary.aliases), (565, 36));
    assert_eq!(inspect_bytes(&ck).unwrap().entries.len(), 601);
}
