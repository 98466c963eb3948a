//! A small mutation fuzzer on stable Rust, for vene's loaders.
//!
//! A target is a set of seed files (a valid folder: a model, an SAE, a save) and a loader.
//! Each iteration copies the seed folder, mutates one or two of its files with a fixed-seed
//! generator (bit flips, interesting bytes, truncation, insertion, huge numbers spliced into
//! text), runs the loader under [`std::panic::catch_unwind`] and fails on a panic. Errors are
//! fine: a loader must refuse bad input, not crash. The inputs that ever failed are kept under
//! `tests/fixtures/fuzz-regressions/<target>/` and replayed as plain tests
//! ([`replay_regressions`]).
//!
//! ```
//! use vene_testutil::fuzz::{FuzzTarget, Mutator};
//! let mut m = Mutator::new(7);
//! let a = m.mutate(b"{\"d_in\": 16}");
//! let mut m2 = Mutator::new(7);
//! assert_eq!(a, m2.mutate(b"{\"d_in\": 16}")); // deterministic
//! let seeds = vec![("cfg.json".to_string(), b"{\"d_in\": 16}".to_vec())];
//! let report = FuzzTarget::new("doc", seeds).iterations(20).run(|dir| {
//!     let _ = std::fs::read_to_string(dir.join("cfg.json"));
//! });
//! assert_eq!(report.runs, 20);
//! ```

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A deterministic xorshift generator and the mutations built on it.
#[derive(Debug, Clone)]
pub struct Mutator {
    state: u64,
}

/// Numbers spliced into text inputs: the sizes that overflow or exhaust memory, negative and
/// fractional values, and the edges of integer types.
const INTERESTING_NUMBERS: [&str; 12] = [
    "0",
    "-1",
    "1000000000000",
    "18446744073709551615",
    "18446744073709551616",
    "4294967296",
    "9223372036854775807",
    "1e308",
    "-0.5",
    "65536",
    "NaN",
    "2147483648",
];

const INTERESTING_BYTES: [u8; 8] = [0x00, 0xff, 0x7f, 0x80, 0x01, b'9', b'"', b'{'];

impl Mutator {
    /// A generator seeded with `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// The next pseudo-random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `data` changed by one to three random mutations.
    pub fn mutate(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        let n = 1 + self.below(3);
        for _ in 0..n {
            self.mutate_once(&mut out);
        }
        out
    }

    fn mutate_once(&mut self, out: &mut Vec<u8>) {
        let len = out.len();
        match self.below(8) {
            0 if len > 0 => {
                let i = self.below(len);
                out[i] ^= 1 << self.below(8);
            }
            1 if len > 0 => {
                let i = self.below(len);
                out[i] = INTERESTING_BYTES[self.below(INTERESTING_BYTES.len())];
            }
            2 if len > 0 => {
                out.truncate(self.below(len));
            }
            3 => {
                let i = self.below(len + 1);
                let k = 1 + self.below(16);
                let bytes: Vec<u8> = (0..k).map(|_| self.next_u64() as u8).collect();
                out.splice(i..i, bytes);
            }
            4 if len > 1 => {
                let i = self.below(len);
                let k = 1 + self.below((len - i).min(64));
                out.drain(i..i + k);
            }
            5 | 6 => self.splice_number(out),
            _ if len >= 8 => {
                // overwrite 8 bytes (a little-endian length field, a header size) with a huge value
                let i = self.below(len - 7);
                let v: u64 = match self.below(3) {
                    0 => u64::MAX,
                    1 => 1 << 40,
                    _ => self.next_u64(),
                };
                out[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => out.push(self.next_u64() as u8),
        }
    }

    /// Replaces one run of ASCII digits with an interesting number (for JSON and headers).
    fn splice_number(&mut self, out: &mut Vec<u8>) {
        let starts: Vec<usize> = (0..out.len())
            .filter(|&i| out[i].is_ascii_digit() && (i == 0 || !out[i - 1].is_ascii_digit()))
            .collect();
        if starts.is_empty() {
            return;
        }
        let s = starts[self.below(starts.len())];
        let mut e = s;
        while e < out.len() && out[e].is_ascii_digit() {
            e += 1;
        }
        let num = INTERESTING_NUMBERS[self.below(INTERESTING_NUMBERS.len())];
        out.splice(s..e, num.bytes());
    }
}

/// What a fuzz run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuzzReport {
    /// Inputs tried.
    pub runs: usize,
}

/// One fuzz target: seed files, a fixed seed, and bounds on iterations and time.
#[derive(Debug, Clone)]
pub struct FuzzTarget {
    name: String,
    files: Vec<(String, Vec<u8>)>,
    seed: u64,
    iterations: usize,
    budget: Duration,
}

impl FuzzTarget {
    /// A target named `name` (the regression corpus folder) over `files` (name, content).
    pub fn new(name: &str, files: Vec<(String, Vec<u8>)>) -> Self {
        Self {
            name: name.to_string(),
            files,
            seed: 0x5eed,
            iterations: 200,
            budget: Duration::from_secs(4),
        }
    }

    /// Reads the seed files of the folder `dir` (not recursing).
    pub fn from_dir(name: &str, dir: &Path) -> Self {
        let mut files = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        for p in entries {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            files.push((name, bytes));
        }
        Self::new(name, files)
    }

    /// Sets the generator's seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// At most this many inputs.
    pub fn iterations(mut self, n: usize) -> Self {
        self.iterations = n;
        self
    }

    /// At most this much time.
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Runs `load` on the seed folder and its mutations; panics (naming the input, which is
    /// kept under the system temp folder) when `load` panicked on one.
    pub fn run(&self, load: impl Fn(&Path)) -> FuzzReport {
        let mut rng = Mutator::new(self.seed);
        let root = std::env::temp_dir().join(format!(
            "vene-fuzz-{}-{}-{}",
            self.name,
            std::process::id(),
            rng.next_u64() % 100_000
        ));
        let start = Instant::now();
        let mut runs = 0;
        while runs < self.iterations && start.elapsed() < self.budget {
            let case = root.join(format!("case-{runs}"));
            std::fs::create_dir_all(&case).expect("temp folder");
            // mutate one file (sometimes two), or drop one
            let mut files = self.files.clone();
            let which = rng.below(files.len().max(1));
            if runs > 0 && !files.is_empty() {
                if rng.below(12) == 0 {
                    files.remove(which);
                } else {
                    files[which].1 = rng.mutate(&files[which].1);
                    if files.len() > 1 && rng.below(4) == 0 {
                        let other = rng.below(files.len());
                        files[other].1 = rng.mutate(&files[other].1);
                    }
                }
            }
            for (name, bytes) in &files {
                std::fs::write(case.join(name), bytes).expect("write fuzz input");
            }
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| load(&case)));
            if outcome.is_err() {
                panic!(
                    "fuzz target {}: the loader panicked on input {} (run {runs}); copy that folder to tests/fixtures/fuzz-regressions/{}/ once fixed",
                    self.name,
                    case.display(),
                    self.name
                );
            }
            let _ = std::fs::remove_dir_all(&case);
            runs += 1;
        }
        let _ = std::fs::remove_dir_all(&root);
        FuzzReport { runs }
    }
}

/// Runs `load` on every case folder under `tests/fixtures/fuzz-regressions/<target>/` (copied
/// to a temporary folder first, so a loader cannot change the corpus) and fails on a panic.
/// Returns how many cases ran.
pub fn replay_regressions(target: &str, load: impl Fn(&Path)) -> usize {
    let dir = crate::fixtures().join("fuzz-regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut cases: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    for case in &cases {
        let tmp = std::env::temp_dir().join(format!(
            "vene-replay-{target}-{}-{}",
            std::process::id(),
            case.file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("temp folder");
        for f in std::fs::read_dir(case).expect("case folder").flatten() {
            std::fs::copy(f.path(), tmp.join(f.file_name())).expect("copy case file");
        }
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| load(&tmp)));
        let _ = std::fs::remove_dir_all(&tmp);
        if outcome.is_err() {
            panic!("regression {}: the loader panicked", case.display());
        }
    }
    cases.len()
}
