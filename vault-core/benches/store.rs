//! Side-by-side benchmarks of the vault's store: SQLCipher with the vault's raw 256-bit key
//! against the same code on plain SQLite, and against SQLCipher's own passphrase KDF; plus the
//! cost of unlocking a vault (Argon2id at the default parameters, or a key-wrapper slot).
//!
//! Run with `cargo bench -p vault-core --bench store`. See `docs/benchmarks.md`.

// Benchmark setup may abort on failure: a bench that cannot build its fixture has nothing to
// measure, so unwrap/expect/panic are fine here (the workspace denies them in library code).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashSet;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use tempfile::TempDir;
use vault_core::bench_support::{self, Connection};
use vault_core::{CreateOptions, KdfParams, MessageStatus, NewMessage, Passphrase, SoftwareKeyWrapper, Vault};

/// The raw database key used by the `raw_key` benches (any fixed 32 bytes will do).
const RAW_KEY: [u8; 32] = [
    0x5e, 0x1f, 0x93, 0x0a, 0xc4, 0x27, 0x6b, 0xd8, 0x11, 0x82, 0x3d, 0xf0, 0x49, 0xae, 0x75, 0x06, 0xbb, 0x60, 0x2c,
    0x97, 0xe3, 0x58, 0x0f, 0xd1, 0x84, 0x3a, 0xc9, 0x12, 0x6e, 0xf7, 0x20, 0x9d,
];
/// The passphrase of the `sqlcipher_pbkdf2` database.
const SQLCIPHER_PASSPHRASE: &str = "passphrase";
/// The passphrase of the benchmark vaults.
const VAULT_PASSPHRASE: &str = "correct horse battery staple";

/// Messages in the database of the `open` and `unlock` benches.
const SMALL_DB_MESSAGES: usize = 300;
/// Messages in the bulk-insert and full-text-query benches.
const LARGE_DB_MESSAGES: usize = 100_000;
/// Messages per transaction when filling a database.
const BATCH: usize = 1_000;
/// Number of conversations the messages are spread over.
const CONVERSATIONS: u64 = 100;
/// Results asked of each full-text query.
const SEARCH_LIMIT: usize = 20;
/// Zipf ranks (0-based indexes into [`VOCABULARY`]) of the words the FTS bench cycles through:
/// from a word in most messages down to one of the rarest.
const QUERY_RANKS: [usize; 6] = [2, 12, 40, 100, 200, VOCABULARY.len() - 1];

/// A few hundred English-like words, roughly from most to least frequent. Word `r` (0-based) is
/// drawn with weight 1/(r+1), a Zipf distribution with exponent 1.
const VOCABULARY: &[&str] = &[
    "the",
    "you",
    "to",
    "and",
    "it",
    "is",
    "that",
    "for",
    "on",
    "we",
    "have",
    "my",
    "just",
    "this",
    "are",
    "with",
    "what",
    "not",
    "but",
    "can",
    "will",
    "your",
    "get",
    "was",
    "all",
    "know",
    "like",
    "now",
    "yes",
    "about",
    "out",
    "there",
    "when",
    "one",
    "see",
    "how",
    "good",
    "think",
    "time",
    "today",
    "going",
    "here",
    "come",
    "back",
    "want",
    "tomorrow",
    "right",
    "home",
    "really",
    "need",
    "well",
    "then",
    "let",
    "some",
    "thanks",
    "did",
    "take",
    "tonight",
    "work",
    "still",
    "sure",
    "call",
    "them",
    "make",
    "love",
    "night",
    "from",
    "more",
    "later",
    "day",
    "look",
    "way",
    "any",
    "people",
    "said",
    "also",
    "morning",
    "sorry",
    "yeah",
    "great",
    "last",
    "new",
    "could",
    "much",
    "very",
    "after",
    "first",
    "sounds",
    "ready",
    "next",
    "week",
    "again",
    "dinner",
    "before",
    "meet",
    "maybe",
    "little",
    "thing",
    "long",
    "place",
    "leave",
    "soon",
    "nice",
    "happy",
    "though",
    "car",
    "minutes",
    "send",
    "phone",
    "friend",
    "lunch",
    "check",
    "free",
    "pick",
    "guys",
    "coffee",
    "weekend",
    "house",
    "tell",
    "school",
    "picture",
    "hope",
    "fine",
    "office",
    "late",
    "early",
    "party",
    "movie",
    "train",
    "store",
    "bring",
    "money",
    "hour",
    "family",
    "birthday",
    "talk",
    "text",
    "stop",
    "email",
    "problem",
    "plan",
    "open",
    "game",
    "watch",
    "start",
    "finish",
    "shop",
    "kids",
    "dog",
    "walk",
    "drive",
    "park",
    "ticket",
    "flight",
    "hotel",
    "trip",
    "beach",
    "rain",
    "weather",
    "cold",
    "warm",
    "sunny",
    "meeting",
    "project",
    "deadline",
    "report",
    "client",
    "budget",
    "review",
    "draft",
    "slides",
    "notes",
    "doctor",
    "appointment",
    "pharmacy",
    "groceries",
    "milk",
    "bread",
    "eggs",
    "cheese",
    "pizza",
    "pasta",
    "salad",
    "soup",
    "cake",
    "wine",
    "beer",
    "tea",
    "juice",
    "breakfast",
    "kitchen",
    "garden",
    "window",
    "door",
    "keys",
    "wallet",
    "jacket",
    "shoes",
    "umbrella",
    "laptop",
    "charger",
    "battery",
    "screen",
    "password",
    "update",
    "backup",
    "photo",
    "video",
    "music",
    "concert",
    "song",
    "book",
    "library",
    "museum",
    "gallery",
    "theatre",
    "restaurant",
    "bakery",
    "market",
    "station",
    "airport",
    "bridge",
    "river",
    "mountain",
    "forest",
    "lake",
    "island",
    "village",
    "city",
    "street",
    "corner",
    "parking",
    "traffic",
    "bus",
    "bike",
    "taxi",
    "subway",
    "passport",
    "luggage",
    "suitcase",
    "souvenir",
    "postcard",
    "letter",
    "package",
    "delivery",
    "receipt",
    "invoice",
    "contract",
    "lawyer",
    "bank",
    "loan",
    "insurance",
    "rent",
    "landlord",
    "neighbour",
    "plumber",
    "electrician",
    "painter",
    "carpenter",
    "gardener",
    "teacher",
    "student",
    "homework",
    "exam",
    "grade",
    "lecture",
    "seminar",
    "thesis",
    "professor",
    "campus",
    "dorm",
    "roommate",
    "vacation",
    "holiday",
    "festival",
    "parade",
    "fireworks",
    "lantern",
    "candle",
    "blanket",
    "pillow",
    "sofa",
    "carpet",
    "mirror",
    "ladder",
    "hammer",
    "screwdriver",
    "drill",
    "paint",
    "brush",
    "bucket",
    "sponge",
    "towel",
    "soap",
    "shampoo",
    "toothbrush",
    "razor",
    "perfume",
    "necklace",
    "bracelet",
    "earrings",
    "sweater",
    "scarf",
    "gloves",
    "helmet",
    "backpack",
    "tent",
    "compass",
    "lighthouse",
    "harbour",
    "sailboat",
    "kayak",
    "canoe",
    "paddle",
    "anchor",
    "seagull",
    "dolphin",
    "penguin",
    "giraffe",
    "elephant",
    "kangaroo",
    "hedgehog",
    "squirrel",
    "owl",
    "falcon",
    "sparrow",
    "tulip",
    "orchid",
    "sunflower",
    "cactus",
    "bamboo",
    "maple",
    "walnut",
    "almond",
    "apricot",
    "blueberry",
    "raspberry",
    "pomegranate",
    "artichoke",
    "asparagus",
    "zucchini",
    "turmeric",
    "cinnamon",
    "saffron",
    "nutmeg",
    "vanilla",
];

/// First names for conversation titles and senders.
const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia",
    "peggy", "rupert", "sybil", "trent", "uma", "victor", "wendy",
];

/// A fixed-seed xorshift64 generator: the same messages on every run, no `rand` needed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn index(n: u64) -> usize {
    usize::try_from(n).expect("index fits in usize")
}

/// `count` deterministic messages: bodies of 5–40 Zipf-distributed words, ~100 conversations,
/// fixed send times.
fn messages(count: usize) -> Vec<NewMessage> {
    let distinct: HashSet<&str> = VOCABULARY.iter().copied().collect();
    assert_eq!(distinct.len(), VOCABULARY.len(), "vocabulary words must be distinct");
    // Cumulative integer weights 1/(r+1), scaled: deterministic, no floating point.
    let mut cumulative = Vec::with_capacity(VOCABULARY.len());
    let mut total = 0u64;
    for rank in 0..VOCABULARY.len() {
        total += 1_000_000 / (rank as u64 + 1);
        cumulative.push(total);
    }
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let base_ms = 1_700_000_000_000_i64;
    (0..count)
        .map(|i| {
            let words = 5 + rng.below(36);
            let mut body = String::new();
            for w in 0..words {
                let draw = rng.below(total);
                let rank = cumulative.partition_point(|&c| c <= draw);
                if w > 0 {
                    body.push(' ');
                }
                body.push_str(VOCABULARY[rank]);
            }
            let conversation = rng.below(CONVERSATIONS);
            let name_count = NAMES.len() as u64;
            let status = if rng.below(2) == 0 { MessageStatus::Sent } else { MessageStatus::Received };
            let sender = match status {
                MessageStatus::Sent => "me".to_owned(),
                _ => NAMES[index(rng.below(name_count))].to_owned(),
            };
            NewMessage {
                conversation: format!("{} {:02}", NAMES[index(conversation % name_count)], conversation),
                sender,
                body,
                sent_at: base_ms + i64::try_from(i).expect("small index") * 45_000,
                status,
                expires_at: None,
            }
        })
        .collect()
}

/// The two ways the vault's own database code can open a database.
#[derive(Clone, Copy)]
enum Backend {
    /// SQLCipher with the vault's raw 256-bit key (no PBKDF2).
    RawKey,
    /// The same code with no key: plain SQLite.
    Plain,
}

impl Backend {
    const ALL: [Backend; 2] = [Backend::RawKey, Backend::Plain];

    fn name(self) -> &'static str {
        match self {
            Backend::RawKey => "raw_key",
            Backend::Plain => "plain",
        }
    }

    fn open(self, path: &Path) -> Connection {
        match self {
            Backend::RawKey => bench_support::open_raw_key(path, &RAW_KEY),
            Backend::Plain => bench_support::open_plain(path),
        }
        .unwrap()
    }
}

fn insert_all(conn: &mut Connection, messages: &[NewMessage]) {
    for batch in messages.chunks(BATCH) {
        black_box(bench_support::insert_messages(conn, batch).unwrap());
    }
}

/// Whether the file starts with the plain SQLite header (an encrypted file does not).
fn has_plain_header(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.starts_with(b"SQLite format 3\0")
}

/// Builds a database with `open`, fills it, closes it (checkpointing the WAL into the file).
fn build_db(path: &Path, open: impl FnOnce(&Path) -> Connection, messages: &[NewMessage]) {
    let mut conn = open(path);
    insert_all(&mut conn, messages);
    drop(conn);
}

fn bench_open(c: &mut Criterion) {
    let dir = TempDir::new().unwrap();
    let messages = messages(SMALL_DB_MESSAGES);
    let raw = dir.path().join("raw.db");
    let plain = dir.path().join("plain.db");
    let pbkdf2 = dir.path().join("pbkdf2.db");
    build_db(&raw, |p| Backend::RawKey.open(p), &messages);
    build_db(&plain, |p| Backend::Plain.open(p), &messages);
    build_db(&pbkdf2, |p| bench_support::open_sqlcipher_passphrase(p, SQLCIPHER_PASSPHRASE).unwrap(), &messages);
    // The fixtures are what they claim to be.
    assert!(!has_plain_header(&raw), "raw-key database is not encrypted");
    assert!(has_plain_header(&plain), "plain database is not plain SQLite");
    assert!(!has_plain_header(&pbkdf2), "passphrase database is not encrypted");
    {
        let conn = Backend::RawKey.open(&raw);
        let version: String = conn.query_row("PRAGMA cipher_version", [], |r| r.get(0)).unwrap();
        let provider: String = conn.query_row("PRAGMA cipher_provider", [], |r| r.get(0)).unwrap();
        let provider_version: String =
            conn.query_row("PRAGMA cipher_provider_version", [], |r| r.get(0)).unwrap_or_default();
        eprintln!("SQLCipher {version}, provider {provider} {provider_version}");
    }

    let mut group = c.benchmark_group("open");
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("raw_key", |b| {
        b.iter(|| bench_support::open_raw_key(black_box(&raw), black_box(&RAW_KEY)).unwrap())
    });
    group.bench_function("plain", |b| b.iter(|| bench_support::open_plain(black_box(&plain)).unwrap()));
    group.bench_function("sqlcipher_pbkdf2", |b| {
        b.iter(|| {
            bench_support::open_sqlcipher_passphrase(black_box(&pbkdf2), black_box(SQLCIPHER_PASSPHRASE)).unwrap()
        })
    });
    group.finish();
}

fn bench_insert(c: &mut Criterion) {
    let messages = messages(LARGE_DB_MESSAGES);
    let mut group = c.benchmark_group("insert_100k");
    // One iteration is a whole 100k-message load (about 4-7 s on the 2-core reference machine).
    // Flat sampling, a 1 ms warm-up (one load) and a target time shorter than ten loads make
    // criterion run exactly one load per sample, 11 per backend in all (it warns that it cannot
    // fit 10 samples in the target time: expected). The group takes about 2 minutes.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(20));
    for backend in Backend::ALL {
        group.bench_function(backend.name(), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // A fresh, migrated database; creating it and closing it are not timed.
                    let dir = TempDir::new().unwrap();
                    let mut conn = backend.open(&dir.path().join("bulk.db"));
                    let start = Instant::now();
                    insert_all(&mut conn, black_box(&messages));
                    timed += start.elapsed();
                    drop(conn);
                    drop(dir);
                }
                timed
            })
        });
    }
    group.finish();
}

fn bench_fts_query(c: &mut Criterion) {
    let messages = messages(LARGE_DB_MESSAGES);
    let dir = TempDir::new().unwrap();
    let mut dbs: Vec<(Backend, PathBuf)> = Vec::new();
    for backend in Backend::ALL {
        let path = dir.path().join(format!("{}.db", backend.name()));
        let start = Instant::now();
        build_db(&path, |p| backend.open(p), &messages);
        let size = std::fs::metadata(&path).unwrap().len();
        eprintln!(
            "fts fixture {}: {LARGE_DB_MESSAGES} messages built in {:.2?}, {:.1} MiB",
            backend.name(),
            start.elapsed(),
            size as f64 / (1024.0 * 1024.0)
        );
        dbs.push((backend, path));
    }
    let words: Vec<&str> = QUERY_RANKS.iter().map(|&r| VOCABULARY[r]).collect();
    let conns: Vec<(Backend, Connection)> = dbs.iter().map(|(backend, path)| (*backend, backend.open(path))).collect();
    // Both databases answer every query word with the same hits, so both do the same work.
    for word in &words {
        let matching: i64 = conns[0]
            .1
            .query_row("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1", [format!("\"{word}\"")], |r| {
                r.get(0)
            })
            .unwrap();
        eprintln!("fts query word {word:?}: in {matching} of {LARGE_DB_MESSAGES} messages");
        let ids: Vec<Vec<i64>> = conns
            .iter()
            .map(|(_, conn)| {
                let hits = bench_support::search(conn, word, SEARCH_LIMIT).unwrap();
                hits.iter().map(|h| h.message.id.0).collect()
            })
            .collect();
        assert_eq!(ids[0].len(), SEARCH_LIMIT, "{word:?} has too few hits");
        assert!(ids.iter().all(|i| *i == ids[0]), "{word:?}: the backends disagree");
    }

    // One iteration runs every query word once, and the time reported is per query: each
    // sample averages the same balanced mix of frequent and rare words.
    let mut group = c.benchmark_group("fts_query_100k");
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(3));
    group.measurement_time(Duration::from_secs(15));
    for (backend, conn) in &conns {
        group.bench_function(backend.name(), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for word in &words {
                        black_box(bench_support::search(conn, black_box(word), SEARCH_LIMIT).unwrap());
                    }
                }
                start.elapsed() / u32::try_from(words.len()).unwrap()
            })
        });
    }
    group.finish();

    // The same queries one word at a time, to show how the cost grows with the number of
    // matching messages.
    let mut group = c.benchmark_group("fts_query_100k_by_word");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for word in &words {
        for (backend, conn) in &conns {
            group.bench_with_input(BenchmarkId::new(backend.name(), word), word, |b, word| {
                b.iter(|| bench_support::search(conn, black_box(word), SEARCH_LIMIT).unwrap())
            });
        }
    }
    group.finish();
}

fn bench_unlock(c: &mut Criterion) {
    let dir = TempDir::new().unwrap();
    let passphrase = Passphrase::new(VAULT_PASSPHRASE.to_owned());
    let messages = messages(SMALL_DB_MESSAGES);

    let passphrase_vault = dir.path().join("passphrase-vault");
    let options = CreateOptions { kdf: KdfParams::DEFAULT, wrapper: None };
    let mut vault = Vault::create(&passphrase_vault, &passphrase, options).unwrap();
    vault.messages().add_batch(&messages).unwrap();
    vault.lock();

    let wrapper = SoftwareKeyWrapper::open_or_create(&dir.path().join("device.key")).unwrap();
    let wrapper_vault = dir.path().join("wrapper-vault");
    let options = CreateOptions { kdf: KdfParams::DEFAULT, wrapper: Some(&wrapper) };
    let mut vault = Vault::create(&wrapper_vault, &passphrase, options).unwrap();
    vault.messages().add_batch(&messages).unwrap();
    vault.lock();

    let mut group = c.benchmark_group("unlock");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(15));
    // Only the unlock call is timed; locking (dropping the vault) happens outside the timer.
    group.bench_function("passphrase_argon2_default", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let vault =
                    Vault::unlock_with_passphrase(black_box(&passphrase_vault), black_box(&passphrase)).unwrap();
                timed += start.elapsed();
                vault.lock();
            }
            timed
        })
    });
    group.bench_function("software_wrapper", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let vault = Vault::unlock_with_wrapper(black_box(&wrapper_vault), black_box(&wrapper)).unwrap();
                timed += start.elapsed();
                vault.lock();
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(benches, bench_open, bench_insert, bench_fts_query, bench_unlock);
criterion_main!(benches);
