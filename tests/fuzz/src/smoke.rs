//! The stable-toolchain driver of every fuzz harness: the seed corpus as is,
//! then a few thousand deterministic pseudo-random inputs per target (random
//! bytes, dictionary-token text, and mutated seeds). Not a substitute for a
//! libFuzzer run, but it exercises the same code on every `cargo test`, here
//! (`tests/smoke.rs`) and in the main workspace's test suite.
//!
//! `CREDITGATE_FUZZ_SMOKE_ITERS` overrides the number of generated inputs per
//! target; `CREDITGATE_FUZZ_SMOKE_SEED` the generator seed.

use std::path::{Path, PathBuf};

use super::check;

const DEFAULT_ITERS: usize = 3_000;
const DEFAULT_SEED: u64 = 0x00c0_ffee_2025_0630;

/// SplitMix64: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The seed corpus of `target`: `corpus/` beside this crate's manifest, also
/// when the driver is compiled into the main workspace's tests crate (whose
/// manifest is one directory up).
pub fn corpus_dir(target: &str) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = here.join("corpus");
    let root = if own.is_dir() { own } else { here.join("fuzz").join("corpus") };
    root.join(target)
}

pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).expect("read seed")).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Tokens that make random text look like the target's input.
pub fn dictionary(target: &str) -> &'static [&'static str] {
    match target {
        "identifiers" => &[
            "0",
            "1",
            "9",
            "X",
            "x",
            "Y",
            "I",
            "O",
            "Z",
            "S",
            "V",
            " ",
            "\t",
            "\u{3000}",
            "é",
            "一",
            "\u{0}",
            "91350100M000100Y43",
            "11010519491231002X",
            "110105491231002",
            "19491231",
            "20991231",
            "00000000",
        ],
        "consent_artefact" => &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "null",
            "true",
            "1e999",
            "-1",
            "4294967296",
            "\"consent_id\"",
            "\"issuer\"",
            "\"subject\"",
            "\"type\"",
            "\"credit_code\"",
            "\"resident_id\"",
            "\"id\"",
            "\"grantee\"",
            "\"purposes\"",
            "\"datasets\"",
            "\"columns\"",
            "\"data_from\"",
            "\"data_to\"",
            "\"valid_from\"",
            "\"valid_until\"",
            "\"max_uses\"",
            "\"key_id\"",
            "\"signature\"",
            "\"2025-01-01T00:00:00Z\"",
            "\"9999-12-31T23:59:59+14:00\"",
            "\"2025-02-30\"",
            "\"\\u0000\"",
            "\"\\ud800\"",
        ],
        "policy_file" => &[
            "\n",
            "[[principals]]",
            "[[rules]]",
            "[datasets.\"a.b\"]",
            "name = ",
            "identity = ",
            "role = ",
            "purposes = ",
            "columns = ",
            "subject_keys = ",
            "row_filter = ",
            "mask = ",
            "\"agency\"",
            "\"public\"",
            "\"personal\"",
            "\"sensitive\"",
            "\"partial(1,2)\"",
            "\"range_bucket(0)\"",
            "\"keyed_hash\"",
            "{",
            "}",
            "[",
            "]",
            "=",
            "\"",
            "'",
            "1979-05-27",
            "-9223372036854775808",
            "\"a = 1 OR 1=1\"",
            "\"((((((\"",
            "\"sha256:",
            "\"spiffe://",
            "\"o=",
            "/cn=",
            "é",
            "一",
        ],
        "http_bodies" => &[
            "{\"sql\": \"",
            "\"}",
            "{\"subject\": {\"type\": \"credit_code\", \"id\": \"",
            "\"purpose\": ",
            "\"datasets\": [",
            "\"consent\": ",
            "SELECT ",
            " FROM ",
            " WHERE ",
            " UNION ALL ",
            "(",
            ")",
            "'",
            "\"",
            ";",
            "--",
            "/*",
            "*/",
            "1",
            "a",
            ",",
            " IN (",
            "WITH t AS (",
            "DESCRIBE ",
            "EXPLAIN ",
            "DROP TABLE ",
            "COPY ",
            "SET ",
            "market.enterprises",
            "\\u0000",
            "\\\"",
        ],
        other => panic!("no dictionary for `{other}`"),
    }
}

fn random_bytes(rng: &mut Rng, max_len: usize) -> Vec<u8> {
    let len = rng.below(max_len + 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn token_text(rng: &mut Rng, dict: &[&str], max_tokens: usize) -> Vec<u8> {
    let n = rng.below(max_tokens + 1);
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend_from_slice(rng.pick(dict).as_bytes());
    }
    out
}

fn mutate(rng: &mut Rng, seed: &[u8], all: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = *rng.pick(&[0u8, 0x7f, 0x80, 0xff, b'"', b'\\', b'{', b'[', b'(', b'\'', b'\n', b'9']);
            }
            2 => {
                let i = rng.below(len + 1);
                data.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                data.drain(start..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(32)).min(len);
                let chunk = data[start..end].to_vec();
                let at = rng.below(data.len() + 1);
                for _ in 0..1 + rng.below(4) {
                    data.splice(at..at, chunk.iter().copied());
                }
            }
            5 => {
                let other = rng.pick(all);
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(64)).min(other.len());
                    let at = rng.below(data.len() + 1);
                    data.splice(at..at, other[start..end].iter().copied());
                }
            }
            6 => {
                let token = rng.pick(dict).as_bytes();
                let at = rng.below(len + 1);
                data.splice(at..at, token.iter().copied());
            }
            7 if len > 0 => data.truncate(rng.below(len)),
            _ => {
                // Replace a run with digits or letters (keeps identifiers in shape).
                if len > 0 {
                    let i = rng.below(len);
                    data[i] = *rng.pick(b"0123456789ABCDEFGHJKLMNPQRTUWXYZaxIO");
                }
            }
        }
    }
    data
}

/// Runs `target` on `data`, printing the input if the harness panics.
pub fn run_one(target: &str, label: &str, data: &[u8]) {
    let result = std::panic::catch_unwind(|| check(target, data));
    if let Err(panic) = result {
        eprintln!("fuzz target `{target}` panicked on {label}: {:?}", String::from_utf8_lossy(data));
        eprintln!("input bytes (hex): {}", data.iter().map(|b| format!("{b:02x}")).collect::<String>());
        std::panic::resume_unwind(panic);
    }
}

pub fn smoke(target: &str) {
    let iters = env_number("CREDITGATE_FUZZ_SMOKE_ITERS", DEFAULT_ITERS as u64) as usize;
    let seed = env_number("CREDITGATE_FUZZ_SMOKE_SEED", DEFAULT_SEED);
    let corpus = seeds(target);
    let dict = dictionary(target);
    for (i, data) in corpus.iter().enumerate() {
        run_one(target, &format!("seed #{i}"), data);
    }
    let mut rng = Rng(seed ^ target.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let max_len = corpus.iter().map(Vec::len).max().unwrap_or(0).max(64);
    for i in 0..iters {
        let data = match rng.below(4) {
            0 => random_bytes(&mut rng, max_len.min(4096)),
            1 => token_text(&mut rng, dict, 40),
            _ => {
                let base = rng.pick(&corpus).clone();
                mutate(&mut rng, &base, &corpus, dict)
            }
        };
        run_one(target, &format!("generated input #{i} (seed {seed:#x})"), &data);
    }
}
