//! Settings of the GPU backends' runtime (CubeCL: kernel compilation and autotuning), and a count
//! of what that runtime did, to see where a cold start goes.
//!
//! A GPU backend compiles each distinct kernel the first time it runs, and with autotuning it
//! first benchmarks several kernels for each new problem shape of a tuned operation (matmul,
//! convolution) and keeps the fastest. Both happen on the host during the first inversion.
//! Two persisted caches let later processes skip that work:
//! - autotune results, per device, under `<cache>/autotune/<runtime version>/`;
//! - compiled kernels (CUDA's PTX; SPIR-V where wgpu compiles to it), under
//!   `<cache>/cuda/<runtime version>/` (or `vulkan/`).
//!
//! `<cache>` is [`default_cache_dir`] unless [`GpuRuntime::cache_dir`] says otherwise. A new
//! runtime version uses new folders, every cached kernel is keyed by a hash of its full
//! definition, and every autotune entry by the operation's shape key and a checksum of the set of
//! candidate kernels, so stale entries are never used; deleting the folder resets both caches.
//!
//! The settings are process-wide and fixed when a GPU device first starts: call
//! [`GpuRuntime::install`] before creating any GPU tensor. Otherwise [`super::set_precision`],
//! [`super::check_device`] and [`crate::HyperStyleBuilder::load`] install [`GpuRuntime::default`]
//! the first time they run; a `cubecl.toml` (or `burn.toml`) in the working directory or above,
//! and the `CUBECL_*` environment variables, still apply to everything these settings leave alone.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};

/// How finely the runtime tells problem shapes apart when it autotunes. Every new shape key of a
/// tuned operation runs all of that operation's candidate kernels once; the level sets how sizes
/// (channels, batch, matrix sides) are rounded up into keys, so it trades the number of tuning
/// runs at a cold start against how closely each chosen kernel fits its shape. Sizes that enter a
/// key exactly (a convolution's spatial shape, kernel size, stride) are not affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutotuneLevel {
    /// Sizes rounded up to powers of 2.5: the fewest keys.
    Minimal,
    /// Sizes rounded up to powers of two (the runtime's default).
    #[default]
    Balanced,
    /// Sizes rounded up to powers of 1.5.
    Extensive,
    /// Every size its own key.
    Full,
}

impl AutotuneLevel {
    /// Every level, fewest keys first.
    pub const ALL: [AutotuneLevel; 4] = [
        AutotuneLevel::Minimal,
        AutotuneLevel::Balanced,
        AutotuneLevel::Extensive,
        AutotuneLevel::Full,
    ];

    /// The level's name, as [`FromStr`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            AutotuneLevel::Minimal => "minimal",
            AutotuneLevel::Balanced => "balanced",
            AutotuneLevel::Extensive => "extensive",
            AutotuneLevel::Full => "full",
        }
    }
}

impl fmt::Display for AutotuneLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AutotuneLevel {
    type Err = hyperstyle_core::Error;

    /// `minimal`, `balanced`, `extensive` or `full` (any case).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        hyperstyle_core::parse_name("autotune level", &s.to_ascii_lowercase(), &Self::ALL, Self::name)
    }
}

/// The folder the GPU runtime's caches persist in by default: `$HYPERSTYLE_CACHE_DIR` if set,
/// else `hyperstyle-rs/` in the user's cache folder (`$XDG_CACHE_HOME`, `~/.cache`, or on Windows
/// `%LOCALAPPDATA%`). `None` where none of these exists.
pub fn default_cache_dir() -> Option<PathBuf> {
    cache_dir_from(|name| std::env::var_os(name).filter(|v| !v.is_empty()))
}

fn cache_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    if let Some(dir) = var("HYPERSTYLE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let user_cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| Path::new(&home).join(".cache")))
        .or_else(|| var("LOCALAPPDATA").map(PathBuf::from))?;
    Some(user_cache.join("hyperstyle-rs"))
}

/// The GPU runtime's settings: where its caches persist, how much it autotunes, and whether
/// [`runtime_events`] counts what it does. Applied by [`GpuRuntime::install`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRuntime {
    cache_dir: Option<PathBuf>,
    autotune: AutotuneLevel,
    count_events: bool,
}

impl Default for GpuRuntime {
    /// Caches in [`default_cache_dir`], balanced autotuning, no counting.
    fn default() -> Self {
        GpuRuntime {
            cache_dir: default_cache_dir(),
            autotune: AutotuneLevel::default(),
            count_events: false,
        }
    }
}

impl GpuRuntime {
    /// Persist the caches in `dir` (created when first written), or with `None` leave their
    /// places to the runtime's own defaults (autotune results under the nearest Cargo project's
    /// `target/`, compiled kernels not persisted).
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// The autotune effort.
    pub fn autotune(mut self, level: AutotuneLevel) -> Self {
        self.autotune = level;
        self
    }

    /// Count kernel compilations and autotune trials ([`runtime_events`]). This routes the
    /// runtime's compilation and autotune logs through the [`log`] crate into a counter that
    /// becomes the process's logger: it fails if the program installed a logger of its own. With
    /// the compilation log on, CUDA's runtime also formats each kernel's source with
    /// `clang-format` where that is installed, which lengthens a cold start a little.
    pub fn count_events(mut self, count: bool) -> Self {
        self.count_events = count;
        self
    }

    /// Applies the settings to every GPU device of this process. An error if a GPU device has
    /// already started (its settings are fixed then) or, with [`GpuRuntime::count_events`], if
    /// another logger is installed. Builds without a GPU backend have nothing to configure or
    /// count: they leave the process's logger alone and return `Ok`.
    pub fn install(self) -> Result<()> {
        if self.count_events && cfg!(any(feature = "wgpu", feature = "cuda")) {
            install_counter()?;
        }
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        {
            if !cubecl_config::install(&self) {
                return Err(Error::Device(
                    "the GPU runtime is already configured: a GPU device started before \
                     GpuRuntime::install, or it was called twice; call it first"
                        .to_string(),
                ));
            }
        }
        Ok(())
    }

    /// Installs the default settings unless the runtime was configured already.
    pub(crate) fn install_default_once() {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        {
            static DONE: std::sync::Once = std::sync::Once::new();
            DONE.call_once(|| {
                cubecl_config::install(&GpuRuntime::default());
            });
        }
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cubecl_config {
    use std::sync::Arc;

    use cubecl_common::config::logger::LogCrateLevel;
    use cubecl_runtime::config::autotune::{AutotuneLevel as Level, AutotuneLogLevel};
    use cubecl_runtime::config::cache::CacheConfig;
    use cubecl_runtime::config::compilation::CompilationLogLevel;
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

    use super::{AutotuneLevel, GpuRuntime};

    /// Sets the process-wide runtime configuration: the user's `cubecl.toml` / environment with
    /// `settings` applied. `false` (and nothing changed) if a configuration is already in place.
    pub(super) fn install(settings: &GpuRuntime) -> bool {
        let mut state = CubeClRuntimeConfig::storage().lock();
        if state.is_some() {
            return false;
        }
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        if let Some(dir) = &settings.cache_dir {
            config.autotune.cache = CacheConfig::File(dir.clone());
            config.compilation.cache = Some(CacheConfig::File(dir.clone()));
        }
        config.autotune.level = match settings.autotune {
            AutotuneLevel::Minimal => Level::Minimal,
            AutotuneLevel::Balanced => Level::Balanced,
            AutotuneLevel::Extensive => Level::Extensive,
            AutotuneLevel::Full => Level::Full,
        };
        if settings.count_events {
            // Basic compilation logs name each compiled kernel; full autotune logs list every
            // candidate benchmarked. Both also reach the `log` crate, where the counter reads them.
            if matches!(config.compilation.logger.level, CompilationLogLevel::Disabled) {
                config.compilation.logger.level = CompilationLogLevel::Basic;
            }
            config.compilation.logger.log = Some(LogCrateLevel::Debug);
            config.autotune.logger.level = AutotuneLogLevel::Full;
            config.autotune.logger.log = Some(LogCrateLevel::Debug);
        }
        *state = Some(Arc::new(config));
        true
    }
}

/// What the GPU runtime has done since the process started, counted when
/// [`GpuRuntime::count_events`] is on (all zero otherwise, and on the CPU backend, which compiles
/// nothing). Subtract two snapshots to get the events of what ran between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeEvents {
    /// Kernels compiled (each distinct kernel once per process, unless a persisted cache had it).
    pub kernels_compiled: u64,
    /// Operation shapes autotuned (each once, unless the persisted autotune cache had it).
    pub autotuned_shapes: u64,
    /// Candidate kernels run while autotuning, failed candidates included.
    pub autotune_trials: u64,
}

impl std::ops::Sub for RuntimeEvents {
    type Output = RuntimeEvents;

    fn sub(self, earlier: RuntimeEvents) -> RuntimeEvents {
        RuntimeEvents {
            kernels_compiled: self.kernels_compiled.saturating_sub(earlier.kernels_compiled),
            autotuned_shapes: self.autotuned_shapes.saturating_sub(earlier.autotuned_shapes),
            autotune_trials: self.autotune_trials.saturating_sub(earlier.autotune_trials),
        }
    }
}

impl std::ops::Add for RuntimeEvents {
    type Output = RuntimeEvents;

    fn add(self, other: RuntimeEvents) -> RuntimeEvents {
        RuntimeEvents {
            kernels_compiled: self.kernels_compiled + other.kernels_compiled,
            autotuned_shapes: self.autotuned_shapes + other.autotuned_shapes,
            autotune_trials: self.autotune_trials + other.autotune_trials,
        }
    }
}

impl std::iter::Sum for RuntimeEvents {
    fn sum<I: Iterator<Item = RuntimeEvents>>(iter: I) -> RuntimeEvents {
        iter.fold(RuntimeEvents::default(), |sum, e| sum + e)
    }
}

impl fmt::Display for RuntimeEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} kernels compiled, {} shapes autotuned ({} trials)",
            self.kernels_compiled, self.autotuned_shapes, self.autotune_trials
        )
    }
}

static COUNTING: AtomicBool = AtomicBool::new(false);
static COMPILED: AtomicU64 = AtomicU64::new(0);
static TUNED: AtomicU64 = AtomicU64::new(0);
static TRIALS: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the runtime's event counts ([`RuntimeEvents`]). The runtime logs compilations
/// from a background task, so while counting this waits (up to 0.2 s) until the counts stop
/// changing; call it after a device sync to include everything that ran before.
pub fn runtime_events() -> RuntimeEvents {
    let read = || RuntimeEvents {
        kernels_compiled: COMPILED.load(Ordering::Relaxed),
        autotuned_shapes: TUNED.load(Ordering::Relaxed),
        autotune_trials: TRIALS.load(Ordering::Relaxed),
    };
    let mut events = read();
    if counting_runtime_events() {
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let now = read();
            if now == events {
                break;
            }
            events = now;
        }
    }
    events
}

/// Whether [`runtime_events`] is counting.
pub fn counting_runtime_events() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

/// One line of the runtime's compilation or autotune log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Compiled,
    Tuned,
    Trial,
}

/// The event a runtime log line reports: a compiled kernel (`[Compiling kernel] …` or, at the
/// full level, `[START_KERNEL_COMPILATION] …`), an autotuned shape (`Fastest result …`), or one
/// candidate's outcome (`Autotune[i] name … => …`, or a failure such as `Skip`, `Unknown { … }`).
fn classify(line: &str) -> Option<Event> {
    const FAILURES: [&str; 4] = ["Unknown {", "InvalidSamples {", "Skip", "Validation"];
    if line.starts_with("[Compiling kernel]") || line.starts_with("[START_KERNEL_COMPILATION]") {
        Some(Event::Compiled)
    } else if line.starts_with("Fastest result") {
        Some(Event::Tuned)
    } else if line.starts_with("Autotune[") || FAILURES.iter().any(|f| line.starts_with(f)) {
        Some(Event::Trial)
    } else {
        None
    }
}

struct Counter;

impl log::Log for Counter {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target().starts_with("cubecl")
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = record.args().to_string();
        let counter = match classify(&line) {
            Some(Event::Compiled) => &COMPILED,
            Some(Event::Tuned) => &TUNED,
            Some(Event::Trial) => &TRIALS,
            None => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn flush(&self) {}
}

fn install_counter() -> Result<()> {
    static COUNTER: Counter = Counter;
    if counting_runtime_events() {
        return Ok(());
    }
    log::set_logger(&COUNTER).map_err(|_| {
        Error::Device("cannot count GPU runtime events: this program has installed a logger of its own".to_string())
    })?;
    log::set_max_level(log::LevelFilter::Debug);
    COUNTING.store(true, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_log_lines_are_classified() {
        assert_eq!(classify("[Compiling kernel] conv2d_direct"), Some(Event::Compiled));
        assert_eq!(
            classify("[START_KERNEL_COMPILATION]\nname: matmul"),
            Some(Event::Compiled)
        );
        assert_eq!(
            classify("Fastest result simple-MatmulAutotuneKey { m: 64 }. \n Top 3 times: []"),
            Some(Event::Tuned)
        );
        assert_eq!(
            classify("Autotune[2] name im2col => BenchmarkComputations { median: 1ms }"),
            Some(Event::Trial)
        );
        assert_eq!(classify("Skip"), Some(Event::Trial));
        assert_eq!(classify("validate checksum key=k, checksum=c"), None);
        assert_eq!(classify("some other message"), None);
    }

    #[test]
    fn event_snapshots_add_and_subtract_without_underflow() {
        let later = RuntimeEvents {
            kernels_compiled: 10,
            autotuned_shapes: 3,
            autotune_trials: 12,
        };
        let earlier = RuntimeEvents {
            kernels_compiled: 4,
            autotuned_shapes: 3,
            autotune_trials: 20,
        };
        assert_eq!(
            later - earlier,
            RuntimeEvents {
                kernels_compiled: 6,
                autotuned_shapes: 0,
                autotune_trials: 0
            }
        );
        assert_eq!(
            (later - earlier) + earlier,
            RuntimeEvents {
                autotune_trials: 20,
                ..later
            }
        );
        assert_eq!([earlier, later].into_iter().sum::<RuntimeEvents>(), earlier + later);
        assert_eq!(
            (later - earlier).to_string(),
            "6 kernels compiled, 0 shapes autotuned (0 trials)"
        );
    }

    #[test]
    fn the_cache_folder_follows_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).into())
        };
        assert_eq!(
            cache_dir_from(env(&[("HYPERSTYLE_CACHE_DIR", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            cache_dir_from(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/hyperstyle-rs"))
        );
        assert_eq!(
            cache_dir_from(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/hyperstyle-rs"))
        );
        assert_eq!(cache_dir_from(env(&[])), None);
    }

    #[test]
    fn autotune_level_names() {
        for level in AutotuneLevel::ALL {
            assert_eq!(level.to_string().parse::<AutotuneLevel>().unwrap(), level);
        }
        assert_eq!("Minimal".parse::<AutotuneLevel>().unwrap(), AutotuneLevel::Minimal);
        assert!("fast".parse::<AutotuneLevel>().is_err());
    }
}
