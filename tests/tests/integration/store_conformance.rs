//! One conformance suite for the `Store` trait, instantiated for every compiled backend, so the
//! engines cannot drift apart. Multi-process cases run real child processes (`ipqbdb-store-worker`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ipqbdb_core::report::{ReportKind, ReportState};
use ipqbdb_core::{AddrKey, AddrRange, BanKind, ParseError, Record, UnixTime, V6Prefix, P_MAX};
use ipqbdb_store::kv::{Direction, Table};
use ipqbdb_store::{
    AnyStore, Ban, Engine, OpenOptions, ReadStore, ReportBegin, Store, StoreError, WhiteEntry,
};
use ipqbdb_tests::{ip, must_finish, nth_v4, open_any, options, Lines, Proc, TestDb};

const T0: UnixTime = 1_700_000_000;
const WORKER: &str = env!("CARGO_BIN_EXE_ipqbdb-store-worker");

fn ban<'a>(addr: &str, reason: &'a str, count: u8) -> Ban<'a> {
    Ban {
        ip: ip(addr),
        reason,
        initial_count: count,
        decay: None,
    }
}

fn key(addr: &str) -> AddrKey {
    addr.parse().unwrap()
}

fn range(s: &str) -> AddrRange {
    s.parse().unwrap()
}

fn fresh(b: Engine) -> (TestDb, AnyStore) {
    let dir = TestDb::new(b);
    let store = open_any(dir.path(), b).unwrap();
    (dir, store)
}

/// Opens `dir` as a program configured with `prefix` (`None`: not configured) would.
fn open_with_prefix(
    dir: &Path,
    b: Engine,
    prefix: Option<u32>,
    create: bool,
) -> ipqbdb_store::Result<AnyStore> {
    AnyStore::open(
        dir,
        &OpenOptions {
            backend: Some(b),
            create,
            v6_prefix: prefix.map(|p| V6Prefix::new(p).unwrap()),
            ..options(dir)
        },
    )
}

/// Writes `rec` under `addr` directly, for states no sequence of bans reaches quickly.
fn put_record(s: &AnyStore, addr: &str, rec: Record) {
    s.write(&mut |tx| tx.put(Table::Block, &key(addr).to_bytes(), &rec.encode()))
        .unwrap();
}

fn record(probability: u32, last_update: UnixTime, caught: u64, blocked: u64) -> Record {
    Record {
        probability,
        decay: 3600,
        last_update,
        caught,
        blocked,
        reason: 1,
    }
}

mod suite {
    use super::*;

    pub fn directory_records_backend(b: Engine) {
        let (dir, store) = fresh(b);
        assert_eq!(store.engine(), b);
        assert_eq!(ipqbdb_store::dir::detect(dir.path()).unwrap(), Some(b));
        drop(store);
        // Reopening without naming a backend finds it.
        let again = AnyStore::open(dir.path(), &options(dir.path())).unwrap();
        assert_eq!(again.engine(), b);
        for other in Engine::ALL.into_iter().filter(|&o| o != b) {
            let opts = OpenOptions {
                backend: Some(other),
                ..options(dir.path())
            };
            match AnyStore::open(dir.path(), &opts) {
                Err(StoreError::EngineMismatch { found, wanted, .. }) => {
                    assert_eq!((found, wanted), (b, other));
                }
                Err(e) => panic!("wrong error {e}"),
                Ok(_) => panic!("opened a {b} directory as {other}"),
            }
        }
    }

    pub fn missing_database_is_not_created_without_create(b: Engine) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nothing-here");
        let opts = OpenOptions {
            create: false,
            backend: Some(b),
            ..OpenOptions::default()
        };
        let e = AnyStore::open(&target, &opts).err().expect("must fail");
        assert!(matches!(e, StoreError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("nothing-here"), "{e}");
        assert!(!target.exists());
    }

    pub fn ban_new_raise_and_reach_max(b: Engine) {
        let (_dir, s) = fresh(b);
        let first = s.ban(&ban("198.51.100.7", "ssh", 5), T0).unwrap();
        assert_eq!(first.outcome.kind, BanKind::New);
        assert_eq!(first.key, key("198.51.100.7"));
        let rec = s.lookup(first.key).unwrap().unwrap();
        assert_eq!(rec.probability, 1 << 26);
        assert_eq!((rec.caught, rec.decay, rec.last_update), (1, 3600, T0));
        let mut events = 0;
        for _ in 0..5 {
            let r = s.ban(&ban("198.51.100.7", "ssh", 5), T0).unwrap();
            assert_eq!(r.outcome.kind, BanKind::Raised);
            events += u32::from(r.outcome.reached_max);
        }
        let rec = s.lookup(first.key).unwrap().unwrap();
        assert_eq!(rec.probability, P_MAX);
        assert_eq!(rec.caught, 6);
        assert_eq!(
            rec.decay, 7200,
            "crossing the threshold added the addend once"
        );
        assert_eq!(events, 1);
        assert_eq!(s.record_count().unwrap(), 1);
        assert_eq!(s.lookup(key("198.51.100.8")).unwrap(), None);
    }

    pub fn addresses_are_normalised(b: Engine) {
        let (_dir, s) = fresh(b);
        s.ban(&ban("2001:db8:1:2::1", "web", 5), T0).unwrap();
        let r = s.ban(&ban("2001:db8:1:2:ffff::9", "web", 5), T0).unwrap();
        assert_eq!(r.outcome.kind, BanKind::Raised, "same /64");
        assert_eq!(r.key, key("2001:db8:1:2::"));
        s.ban(&ban("::ffff:203.0.113.5", "web", 5), T0).unwrap();
        let r = s.ban(&ban("203.0.113.5", "web", 5), T0).unwrap();
        assert_eq!(r.outcome.kind, BanKind::Raised, "v4-mapped is v4");
        assert_eq!(s.record_count().unwrap(), 2);
        let (rec, white) = s.verdict_state(ip("2001:db8:1:2:aaaa::1")).unwrap();
        assert_eq!(rec.unwrap().caught, 2);
        assert_eq!(white, None);
    }

    pub fn whitelist_ranges_narrowest_wins(b: Engine) {
        let (_dir, s) = fresh(b);
        let entries = [("10.0.0.0/8", 600), ("10.1.0.0/16", 60), ("10.1.2.3", 0)];
        for (r, decay) in entries {
            s.white_set(&[WhiteEntry {
                range: range(r),
                decay,
            }])
            .unwrap();
        }
        let stored = s.read(&mut |tx| tx.len(Table::White)).unwrap();
        assert_eq!(stored, 3, "10.0.0.0/8 is one stored range");
        let w = |a: &str| s.white_lookup(key(a)).unwrap().map(|e| e.decay);
        assert_eq!(w("10.200.0.1"), Some(600));
        assert_eq!(w("10.1.200.1"), Some(60));
        assert_eq!(w("10.1.2.3"), Some(0));
        assert_eq!(w("10.1.2.4"), Some(60));
        assert_eq!(w("11.0.0.0"), None);
        assert_eq!(w("9.255.255.255"), None);
        // The whitelist decay overrides the ban's; decay 0 never inserts.
        let with_decay = |a: &'static str| Ban {
            decay: Some(9999),
            ..ban(a, "x", 5)
        };
        s.ban(&with_decay("10.200.0.1"), T0).unwrap();
        assert_eq!(s.lookup(key("10.200.0.1")).unwrap().unwrap().decay, 600);
        s.ban(&with_decay("10.1.9.9"), T0).unwrap();
        assert_eq!(s.lookup(key("10.1.9.9")).unwrap().unwrap().decay, 60);
        let r = s.ban(&with_decay("10.1.2.3"), T0).unwrap();
        assert_eq!(r.outcome.kind, BanKind::Whitelisted);
        assert_eq!(s.lookup(key("10.1.2.3")).unwrap(), None);
        s.ban(&with_decay("11.0.0.1"), T0).unwrap();
        assert_eq!(s.lookup(key("11.0.0.1")).unwrap().unwrap().decay, 9999);
        // Listing, replacing and removing.
        let list = s.white_list().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].range, range("10.0.0.0/8"));
        s.white_set(&[WhiteEntry {
            range: range("10.0.0.0/8"),
            decay: 5,
        }])
        .unwrap();
        assert_eq!(w("10.200.0.1"), Some(5));
        assert!(s.white_remove(range("10.1.0.0/16")).unwrap());
        assert!(!s.white_remove(range("10.1.0.0/16")).unwrap());
        assert_eq!(w("10.1.200.1"), Some(5));
        // A whitelisted-to-zero address with an old record is innocent at verdict time.
        s.ban(&ban("192.0.2.50", "x", 0), T0).unwrap();
        s.white_set(&[WhiteEntry {
            range: range("192.0.2.0/24"),
            decay: 0,
        }])
        .unwrap();
        let (rec, white) = s.verdict_state(ip("192.0.2.50")).unwrap();
        assert!(rec.is_some());
        assert_eq!(white, Some(0));
        // IPv6 ranges work alike, on exact addresses.
        s.white_set(&[WhiteEntry {
            range: range("2001:db8::/32"),
            decay: 77,
        }])
        .unwrap();
        assert_eq!(w("2001:db8:ffff::1"), Some(77));
        assert_eq!(w("2001:db9::1"), None);
        // An IPv6 block holding the IPv4-mapped block reads back (fuzzing found it refused as
        // corrupt); the IPv4 addresses in it are covered, since they live in that block.
        s.white_set(&[WhiteEntry {
            range: range("::/80"),
            decay: 9,
        }])
        .unwrap();
        assert!(s
            .white_list()
            .unwrap()
            .iter()
            .any(|e| e.range == range("::/80")));
        assert_eq!(w("0.0.0.1"), Some(9));
    }

    pub fn reasons_categories_and_statistics(b: Engine) {
        let (_dir, s) = fresh(b);
        let a = s.reason_id("sshd: invalid user").unwrap();
        let c = s.reason_id("postfix: sasl").unwrap();
        assert_eq!(s.reason_id("sshd: invalid user").unwrap(), a);
        assert_ne!(a, c);
        assert!(a > 0 && c > 0);
        s.set_category(a, 18).unwrap();
        assert_eq!(s.reason(a).unwrap().unwrap().category, 18);
        assert_eq!(s.find_reason("postfix: sasl").unwrap().unwrap().id, c);
        assert_eq!(s.find_reason("nope").unwrap(), None);
        assert!(matches!(
            s.set_category(999, 1),
            Err(StoreError::NoSuchReason(999))
        ));
        let long = "x".repeat(ipqbdb_store::MAX_REASON_LEN + 1);
        assert!(matches!(
            s.reason_id(&long),
            Err(StoreError::ReasonTooLong { .. })
        ));
        // Live counters, then credited on deletion.
        s.ban(&ban("192.0.2.1", "sshd: invalid user", 5), T0)
            .unwrap();
        s.ban(&ban("192.0.2.1", "sshd: invalid user", 5), T0)
            .unwrap();
        s.ban(&ban("192.0.2.2", "sshd: invalid user", 5), T0)
            .unwrap();
        s.add_blocked(&[(key("192.0.2.1"), 10), (key("192.0.2.2"), 5)])
            .unwrap();
        let stats = s.reason_stats().unwrap();
        let sa = stats.iter().find(|x| x.reason.id == a).unwrap();
        assert_eq!(
            (sa.live_records, sa.live_caught, sa.live_blocked),
            (2, 3, 15)
        );
        assert_eq!((sa.reason.caught, sa.reason.blocked), (0, 0));
        let gone = s
            .delete_records(&[key("192.0.2.1"), key("192.0.2.99")])
            .unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].0, gone[0].1.caught), (key("192.0.2.1"), 2));
        let r = s.reason(a).unwrap().unwrap();
        assert_eq!((r.caught, r.blocked, r.category), (2, 10, 18));
        let stats = s.reason_stats().unwrap();
        let sa = stats.iter().find(|x| x.reason.id == a).unwrap();
        assert_eq!(
            (sa.live_records, sa.live_caught, sa.live_blocked),
            (1, 1, 5)
        );
    }

    pub fn block_counters_batch(b: Engine) {
        let (_dir, s) = fresh(b);
        s.ban(&ban("192.0.2.1", "r", 0), T0).unwrap();
        s.add_blocked(&[(key("192.0.2.1"), 3), (key("203.0.113.1"), 7)])
            .unwrap();
        s.add_blocked(&[(key("192.0.2.1"), 4)]).unwrap();
        assert_eq!(s.lookup(key("192.0.2.1")).unwrap().unwrap().blocked, 7);
        assert_eq!(
            s.lookup(key("203.0.113.1")).unwrap(),
            None,
            "no record is created"
        );
    }

    pub fn listing_and_range_deletion(b: Engine) {
        let (_dir, s) = fresh(b);
        for a in [
            "192.0.2.9",
            "192.0.2.1",
            "198.51.100.1",
            "2001:db8::1",
            "192.0.3.0",
        ] {
            s.ban(&ban(a, "r", 5), T0).unwrap();
        }
        let all: Vec<String> = s
            .list_records(None)
            .unwrap()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(
            all,
            [
                "192.0.2.1",
                "192.0.2.9",
                "192.0.3.0",
                "198.51.100.1",
                "2001:db8::"
            ]
        );
        let some = s.list_records(Some(range("192.0.2.0/24"))).unwrap();
        assert_eq!(some.len(), 2);
        assert_eq!(
            s.delete_range(range("192.0.2.0-192.0.3.0")).unwrap().len(),
            3
        );
        assert_eq!(s.record_count().unwrap(), 2);
    }

    pub fn retention_rule(b: Engine) {
        let (_dir, s) = fresh(b);
        // Ten records updated at T0 + i.
        for i in 0..10u32 {
            let a = nth_v4(10, i).to_string();
            s.ban(&ban(&a, "r", 5), T0 + i64::from(i)).unwrap();
        }
        let now = T0 + 100;
        // min-age 95: records 0..=5 are stale (age 100..=95). With max 8, only the two oldest go.
        let gone: Vec<String> = s
            .retain(95, Some(8), now)
            .unwrap()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(gone, ["10.0.0.0", "10.0.0.1"], "the two oldest");
        assert_eq!(s.lookup(key("10.0.0.0")).unwrap(), None);
        assert_eq!(s.lookup(key("10.0.0.1")).unwrap(), None);
        assert!(s.lookup(key("10.0.0.2")).unwrap().is_some());
        // Fewer than N remain anyway: nothing goes.
        assert!(s.retain(95, Some(20), now).unwrap().is_empty());
        // N smaller than what may go: never a record updated within min-age.
        assert_eq!(s.retain(95, Some(0), now).unwrap().len(), 4);
        assert_eq!(s.record_count().unwrap(), 4);
        // Without N, every stale record.
        assert_eq!(s.retain(0, None, now).unwrap().len(), 4);
        assert_eq!(s.record_count().unwrap(), 0);
        let r = s.find_reason("r").unwrap().unwrap();
        assert_eq!(r.caught, 10, "deleted records' counters are credited");
    }

    pub fn notes_commit_with_bans(b: Engine) {
        let (_dir, s) = fresh(b);
        assert_eq!(s.note(b"pos:/var/log/auth.log").unwrap(), None);
        let notes = [(b"pos:/var/log/auth.log".to_vec(), b"123".to_vec())];
        s.ban_batch_noting(&[ban("192.0.2.1", "r", 5)], T0, &notes)
            .unwrap();
        assert_eq!(
            s.note(b"pos:/var/log/auth.log").unwrap().as_deref(),
            Some(&b"123"[..])
        );
        // A failing batch leaves the old note: position and bans move together or not at all.
        let long = "z".repeat(ipqbdb_store::MAX_REASON_LEN + 1);
        let notes = [(b"pos:/var/log/auth.log".to_vec(), b"456".to_vec())];
        assert!(s
            .ban_batch_noting(&[ban("192.0.2.2", &long, 5)], T0, &notes)
            .is_err());
        assert_eq!(
            s.note(b"pos:/var/log/auth.log").unwrap().as_deref(),
            Some(&b"123"[..])
        );
        // Notes cannot clobber the format marker.
        s.ban_batch_noting(&[], T0, &[(b"format".to_vec(), b"x".to_vec())])
            .unwrap();
        drop(s);
        open_any(_dir.path(), b).expect("format marker intact");
    }

    pub fn failed_write_rolls_back(b: Engine) {
        let (_dir, s) = fresh(b);
        let res: ipqbdb_store::Result<()> = s.write(&mut |tx| {
            tx.put(Table::Block, &key("192.0.2.1").to_bytes(), &[1; 37])?;
            Err(StoreError::NoSuchReason(1))
        });
        assert!(res.is_err());
        assert_eq!(s.record_count().unwrap(), 0);
        // A batch is one transaction: a bad reason in it keeps every ban out.
        let long = "y".repeat(ipqbdb_store::MAX_REASON_LEN + 1);
        let batch = [ban("192.0.2.2", "ok", 5), ban("192.0.2.3", &long, 5)];
        assert!(s.ban_batch(&batch, T0).is_err());
        assert_eq!(s.record_count().unwrap(), 0);
        assert_eq!(s.find_reason("ok").unwrap(), None);
    }

    pub fn persists_and_refuses_foreign_format(b: Engine) {
        let dir = TestDb::new(b);
        {
            let s = open_any(dir.path(), b).unwrap();
            s.ban(&ban("192.0.2.1", "r", 5), T0).unwrap();
        }
        let s = open_any(dir.path(), b).unwrap();
        assert_eq!(s.lookup(key("192.0.2.1")).unwrap().unwrap().caught, 1);
        s.write(&mut |tx| tx.put(Table::Meta, b"format", b"ipqbdb-99"))
            .unwrap();
        // A corrupt record is an error naming the address, never a panic.
        s.write(&mut |tx| tx.put(Table::Block, &key("192.0.2.2").to_bytes(), b"junk"))
            .unwrap();
        let e = s.lookup(key("192.0.2.2")).unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("192.0.2.2"), "{e}");
        drop(s);
        let e = open_any(dir.path(), b)
            .err()
            .expect("foreign format must be refused");
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("ipqbdb-99"), "{e}");
    }

    pub fn backward_scan_from_the_empty_key_visits_nothing(b: Engine) {
        let (_dir, s) = fresh(b);
        s.ban(&ban("192.0.2.1", "r", 5), T0).unwrap();
        s.ban(&ban("192.0.2.2", "r", 5), T0).unwrap();
        let visited = |dir: Direction| {
            s.read(&mut |tx| {
                let mut n = 0;
                for table in Table::ALL {
                    tx.scan(table, &[], dir, &mut |_, _| {
                        n += 1;
                        Ok(true)
                    })?;
                }
                Ok(n)
            })
            .unwrap()
        };
        assert_eq!(
            visited(Direction::Backward),
            0,
            "nothing is below the empty key"
        );
        // Forward from the empty key is the whole database: 2 records, 1 reason and its text, and
        // the meta table's format and prefix (and LMDB's generation).
        let meta = s.read(&mut |tx| tx.len(Table::Meta)).unwrap();
        assert_eq!(visited(Direction::Forward), 2 + 1 + 1 + meta);
        // Backward from above every key still reads them all, in descending order.
        let mut keys = Vec::new();
        s.read(&mut |tx| {
            tx.scan(
                Table::Block,
                &[0xff; 16],
                Direction::Backward,
                &mut |k, _| {
                    keys.push(k.to_vec());
                    Ok(true)
                },
            )
        })
        .unwrap();
        assert_eq!(
            keys,
            [key("192.0.2.2").to_bytes(), key("192.0.2.1").to_bytes()]
        );
    }

    pub fn ipv6_prefix_is_a_database_setting(b: Engine) {
        let dir = TestDb::new(b);
        let d = dir.path();
        // A new database stores the configured prefix; a program without one uses it.
        let s = open_with_prefix(d, b, Some(56), true).unwrap();
        assert_eq!(s.v6_prefix().unwrap().bits(), 56);
        drop(s);
        let s = open_with_prefix(d, b, None, true).unwrap();
        assert_eq!(s.v6_prefix().unwrap().bits(), 56);
        let r = s.ban(&ban("2001:db8:0:ff::1", "r", 5), T0).unwrap();
        assert_eq!(r.key, key("2001:db8::"), "banned by /56");
        let (rec, _) = s.verdict_state(ip("2001:db8:0:12::9")).unwrap();
        assert!(rec.is_some(), "and looked up by /56");
        drop(s);
        // A program configured otherwise is refused, naming both values.
        for create in [true, false] {
            let e = open_with_prefix(d, b, Some(64), create)
                .err()
                .expect("a disagreeing prefix must be refused");
            assert!(
                matches!(
                    e,
                    StoreError::PrefixMismatch {
                        stored: 56,
                        given: 64,
                        ..
                    }
                ),
                "{e}"
            );
            let msg = e.to_string();
            assert!(msg.contains("/56") && msg.contains("64"), "{msg}");
        }
        // A database made before the prefix was stored: a reader uses its own, the first writer's
        // becomes the database's.
        let s = open_with_prefix(d, b, None, true).unwrap();
        s.write(&mut |tx| tx.delete(Table::Meta, b"setting:ipv6-prefix").map(drop))
            .unwrap();
        drop(s);
        let reader = open_with_prefix(d, b, Some(48), false).unwrap();
        assert_eq!(reader.v6_prefix().unwrap().bits(), 48);
        drop(reader);
        let writer = open_with_prefix(d, b, Some(60), true).unwrap();
        assert_eq!(writer.v6_prefix().unwrap().bits(), 60);
        drop(writer);
        let s = open_with_prefix(d, b, None, false).unwrap();
        assert_eq!(s.v6_prefix().unwrap().bits(), 60, "adopted and stored");
        assert!(open_with_prefix(d, b, Some(48), true).is_err());
    }

    pub fn ipv6_prefix_change_rewrites_and_merges(b: Engine) {
        let dir = TestDb::new(b);
        let s = open_with_prefix(dir.path(), b, Some(64), true).unwrap();
        // Another store of the directory, opened before the change, follows it at once.
        let other = open_with_prefix(dir.path(), b, None, true).unwrap();
        s.reason_id("r").unwrap();
        // Three /64s of one /48, one of another /48, and an IPv4 record that must not move.
        put_record(&s, "2001:db8:1:1::", record(1 << 20, T0, u64::MAX - 5, 7));
        put_record(&s, "2001:db8:1:2::", record(1 << 29, T0, 10, u64::MAX));
        put_record(&s, "2001:db8:1::", record(1 << 10, T0 - 50, 1, 1));
        put_record(&s, "2001:db8:2:5::", record(1 << 25, T0, 3, 4));
        put_record(&s, "192.0.2.1", record(1 << 26, T0, 1, 0));
        let change = s.set_v6_prefix(V6Prefix::new(48).unwrap(), T0).unwrap();
        assert_eq!((change.old.bits(), change.new.bits()), (64, 48));
        assert_eq!((change.moved, change.merged), (3, 2));
        let all = s.list_records(None).unwrap();
        let keys: Vec<String> = all.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, ["192.0.2.1", "2001:db8:1::", "2001:db8:2::"]);
        let merged = all[1].1;
        assert_eq!(merged.probability, 1 << 29, "the higher probability wins");
        assert_eq!(
            (merged.caught, merged.blocked),
            (u64::MAX, u64::MAX),
            "counters add up, saturating"
        );
        assert_eq!(all[2].1, record(1 << 25, T0, 3, 4));
        assert_eq!(all[0].1, record(1 << 26, T0, 1, 0));
        // Everyone uses the new prefix now: bans, verdicts, a reopen.
        assert_eq!(other.v6_prefix().unwrap().bits(), 48);
        let r = other.ban(&ban("2001:db8:2:ffff::1", "r", 5), T0).unwrap();
        assert_eq!(r.key, key("2001:db8:2::"));
        assert_eq!(r.outcome.kind, BanKind::Raised);
        let (rec, _) = other.verdict_state(ip("2001:db8:1:abcd::1")).unwrap();
        assert_eq!(rec.unwrap().probability, 1 << 29);
        drop((s, other));
        assert!(open_with_prefix(dir.path(), b, Some(64), true).is_err());
        let s = open_with_prefix(dir.path(), b, Some(48), true).unwrap();
        // Setting the same prefix again changes nothing.
        let same = s.set_v6_prefix(V6Prefix::new(48).unwrap(), T0).unwrap();
        assert_eq!((same.moved, same.merged), (0, 0));
        assert_eq!(s.record_count().unwrap(), 3);
    }

    pub fn counters_near_the_maximum_saturate(b: Engine) {
        let (_dir, s) = fresh(b);
        let id = s.reason_id("r").unwrap();
        put_record(&s, "192.0.2.1", record(1, T0, u64::MAX - 1, u64::MAX - 2));
        put_record(&s, "192.0.2.2", record(1, T0, 5, 5));
        let stats = s.reason_stats().unwrap();
        let st = stats.iter().find(|x| x.reason.id == id).unwrap();
        assert_eq!((st.live_caught, st.live_blocked), (u64::MAX, u64::MAX));
        // Deleted counters are credited, and totals of credited and live saturate too.
        s.delete_records(&[key("192.0.2.1")]).unwrap();
        put_record(&s, "192.0.2.3", record(1, T0, u64::MAX, u64::MAX));
        let stats = s.reason_stats().unwrap();
        let st = stats.iter().find(|x| x.reason.id == id).unwrap();
        assert_eq!(st.reason.caught, u64::MAX - 1);
        assert_eq!(
            (st.total_caught(), st.total_blocked()),
            (u64::MAX, u64::MAX)
        );
        s.add_blocked(&[(key("192.0.2.3"), 10)]).unwrap();
        assert_eq!(
            s.lookup(key("192.0.2.3")).unwrap().unwrap().blocked,
            u64::MAX
        );
    }

    pub fn selected_deletion_checks_age_in_its_transaction(b: Engine) {
        let (_dir, s) = fresh(b);
        let now = T0 + 1000;
        s.ban(&ban("192.0.2.1", "r", 5), T0).unwrap();
        s.ban(&ban("192.0.2.2", "r", 5), now - 10).unwrap();
        s.ban(&ban("192.0.2.3", "r", 5), T0).unwrap();
        s.ban(&ban("198.51.100.1", "r", 5), T0).unwrap();
        // Overlapping selections select a record once; the fresh one and the one outside stay.
        let sel = [range("192.0.2.0/24"), range("192.0.2.1-192.0.2.2")];
        let gone = s.delete_selected(&sel, Some(100), now).unwrap();
        let gone: Vec<String> = gone.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(gone, ["192.0.2.1", "192.0.2.3"]);
        assert_eq!(s.record_count().unwrap(), 2);
        assert_eq!(s.find_reason("r").unwrap().unwrap().caught, 2, "credited");
        // Without an age, everything selected goes.
        assert_eq!(s.delete_selected(&sel, None, now).unwrap().len(), 1);
        // Under concurrent bans, a record made fresh before the deletion's transaction is never
        // deleted: after a ban and a deletion race, the address always has a record (the ban came
        // first and the record was fresh, or it came after and made a new one).
        let target = "203.0.113.9";
        let sel = [range(target)];
        for round in 0..200 {
            put_record(&s, target, record(1, T0, 1, 0));
            std::thread::scope(|sc| {
                sc.spawn(|| s.ban(&ban(target, "r", 5), now).unwrap());
                s.delete_selected(&sel, Some(100), now).unwrap();
            });
            assert!(
                s.lookup(key(target)).unwrap().is_some(),
                "round {round}: a record banned at the deletion's time was deleted"
            );
        }
    }

    pub fn zero_ban_decay_is_refused(b: Engine) {
        let (_dir, s) = fresh(b);
        let zero = Ban {
            decay: Some(0),
            ..ban("192.0.2.1", "r", 5)
        };
        let e = s.ban(&zero, T0).unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid(ParseError::ZeroBanDecay)),
            "{e}"
        );
        assert!(e.to_string().contains("whitelist"), "{e}");
        // The batch is refused whole, and an existing record is not touched either.
        s.ban(&ban("192.0.2.2", "r", 5), T0).unwrap();
        assert!(s.ban_batch(&[ban("192.0.2.3", "r", 5), zero], T0).is_err());
        assert!(s
            .ban(
                &Ban {
                    decay: Some(0),
                    ..ban("192.0.2.2", "r", 5)
                },
                T0
            )
            .is_err());
        assert_eq!(s.record_count().unwrap(), 1);
        assert_eq!(s.lookup(key("192.0.2.2")).unwrap().unwrap().caught, 1);
    }

    pub fn whitelist_lookup_matches_a_full_search(b: Engine) {
        // Ranges of many spans, nested and overlapping, IPv4 and IPv6: the indexed lookup must give
        // what reading every range gives (narrowest; among equal spans, the one starting last).
        let (_dir, s) = fresh(b);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = key("10.0.0.0").to_u128();
        let mut entries = Vec::new();
        for i in 0..400u32 {
            let start = base + u128::from(next() % 4096);
            let span = match i % 4 {
                0 => 0,
                1 => u128::from(next() % 16),
                2 => u128::from(next() % 512),
                _ => u128::from(next() % 4096),
            };
            let r = AddrRange::new(
                AddrKey::from_bytes(&start.to_be_bytes()).unwrap(),
                AddrKey::from_bytes(&(start + span).to_be_bytes()).unwrap(),
            )
            .unwrap();
            entries.push(WhiteEntry { range: r, decay: i });
        }
        entries.push(WhiteEntry {
            range: range("::/0"),
            decay: 9999,
        });
        entries.push(WhiteEntry {
            range: range("2001:db8::/32"),
            decay: 32,
        });
        s.white_set(&entries).unwrap();
        let stored = s.white_list().unwrap();
        assert_eq!(stored.len(), entries.len() - dupes(&entries));
        assert!(
            stored.windows(2).all(|w| w[0].range < w[1].range),
            "listed in order"
        );
        let naive = |a: AddrKey| {
            stored
                .iter()
                .filter(|e| e.range.contains(a))
                .min_by(|x, y| {
                    x.range
                        .span()
                        .cmp(&y.range.span())
                        .then(y.range.start().cmp(&x.range.start()))
                })
                .copied()
        };
        for off in (0..8192u128).step_by(7) {
            let a = AddrKey::from_bytes(&(base + off).to_be_bytes()).unwrap();
            assert_eq!(s.white_lookup(a).unwrap(), naive(a), "{a}");
        }
        for a in ["2001:db8::1", "2001:db9::1", "9.255.255.255", "11.0.0.0"] {
            assert_eq!(s.white_lookup(key(a)).unwrap(), naive(key(a)), "{a}");
        }
    }

    pub fn version_1_whitelist_is_migrated(b: Engine) {
        let dir = TestDb::new(b);
        let s = open_any(dir.path(), b).unwrap();
        // A version-1 database: whitelist keyed by start and end, no stored prefix.
        s.write(&mut |tx| {
            tx.put(Table::Meta, b"format", b"ipqbdb-1")?;
            tx.delete(Table::Meta, b"setting:ipv6-prefix")?;
            for (r, decay) in [("10.0.0.0/8", 600u32), ("10.1.2.3", 0)] {
                tx.put(Table::White, &range(r).to_bytes(), &decay.to_be_bytes())?;
            }
            Ok(())
        })
        .unwrap();
        drop(s);
        let s = open_any(dir.path(), b).unwrap();
        let list = s.white_list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(s.white_lookup(key("10.1.2.3")).unwrap().unwrap().decay, 0);
        assert_eq!(s.white_lookup(key("10.1.2.4")).unwrap().unwrap().decay, 600);
        assert_eq!(s.v6_prefix().unwrap().bits(), 64);
        let format = s.read(&mut |tx| tx.get(Table::Meta, b"format")).unwrap();
        assert_eq!(format.as_deref(), Some(&b"ipqbdb-2"[..]));
    }

    pub fn concurrent_processes(b: Engine) {
        // Two writers and twelve readers in tight loops for a few seconds: readers check that no read
        // goes back in time (the LMDB race described in lmdb.rs shows only under such load), and the
        // database must then hold exactly the bans the writers acknowledged.
        const SECS: &str = "3";
        let dir = TestDb::new(b);
        drop(open_any(dir.path(), b).unwrap());
        let spawn = |args: &[&str]| {
            let mut cmd = Command::new(WORKER);
            cmd.arg(b.name())
                .arg(dir.path())
                .args(args)
                .stderr(Stdio::piped());
            Proc::spawn_piped(args[0], &mut cmd)
        };
        let readers: Vec<_> = (0..12).map(|_| spawn(&["read-loop", SECS])).collect();
        let writers = [
            spawn(&["ban-loop", SECS, "10"]),
            spawn(&["ban-loop", SECS, "11"]),
        ];
        let mut acked = 0u64;
        for (name, child) in writers
            .into_iter()
            .map(|w| ("writer", w))
            .chain(readers.into_iter().map(|r| ("reader", r)))
        {
            let out = child.output(Duration::from_secs(120));
            assert!(
                out.status.success(),
                "{name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(done) = text.lines().find_map(|l| l.strip_prefix("DONE ")) {
                acked += done.parse::<u64>().unwrap();
            }
        }
        eprintln!("{b}: two writers committed {acked} rounds in {SECS} s beside twelve readers");
        assert!(acked > 0, "{b}: the writers made no progress at all");
        let s = open_any(dir.path(), b).unwrap();
        let counter = s.lookup(key("192.0.2.1")).unwrap().unwrap();
        assert_eq!(
            counter.caught, acked,
            "{b}: no acknowledged ban was lost, none counted twice"
        );
        assert_eq!(s.record_count().unwrap(), acked + 1);
    }

    pub fn sigkill_mid_transaction(b: Engine) {
        const ACKS: u32 = 40;
        let dir = TestDb::new(b);
        let mut cmd = Command::new(WORKER);
        cmd.arg(b.name())
            .arg(dir.path())
            .args(["big-txn", &ACKS.to_string()])
            .stderr(Stdio::null());
        let mut child = Proc::spawn_piped("big-txn worker", &mut cmd);
        let lines = Lines::new(child.child().stdout.take().unwrap());
        let mut acked = Vec::new();
        loop {
            match lines.next(Duration::from_secs(120)).as_deref() {
                Some("INTXN") => break,
                Some(l) if l.starts_with("ACK ") => acked.push(l[4..].to_string()),
                other => panic!("worker said {other:?} before reaching the big transaction"),
            }
        }
        child.sigkill();
        assert_eq!(acked.len() as u32, ACKS);
        let path = dir.path().to_path_buf();
        let (count, missing, write_ok) =
            must_finish("reopen after SIGKILL", Duration::from_secs(60), move || {
                let s = open_any(&path, b).unwrap();
                let missing: Vec<String> = acked
                    .iter()
                    .filter(|a| s.lookup(a.parse().unwrap()).unwrap().is_none())
                    .cloned()
                    .collect();
                let count = s.record_count().unwrap();
                let write_ok = s.ban(&ban("203.0.113.1", "after", 5), T0).is_ok();
                (count, missing, write_ok)
            });
        assert!(missing.is_empty(), "acknowledged bans lost: {missing:?}");
        assert_eq!(
            count,
            u64::from(ACKS),
            "the killed transaction left nothing behind"
        );
        assert!(write_ok, "the database takes writes after the crash");
    }

    /// A batch of bans does what the same bans one by one do (records, reports, reasons), with an
    /// address banned twice in the batch, addresses sharing an IPv6 prefix, new reasons, and
    /// whitelisted addresses, under a whitelist small enough to be read whole and one too large.
    pub fn batched_bans_equal_bans_one_by_one(b: Engine) {
        for ranges in [3u32, 200] {
            let (_d1, batched) = fresh(b);
            let (_d2, single) = fresh(b);
            let white: Vec<WhiteEntry> = (0..ranges)
                .map(|i| WhiteEntry {
                    range: AddrRange::new(
                        AddrKey::exact(nth_v4(203, i * 4)),
                        AddrKey::exact(nth_v4(203, i * 4 + 1)),
                    )
                    .unwrap(),
                    decay: if i % 2 == 0 { 0 } else { 60 },
                })
                .collect();
            let wl_addr = |i: u32| nth_v4(203, i * 4 + 1).to_string();
            let (w0, w1) = (wl_addr(0), wl_addr(1));
            for s in [&batched, &single] {
                s.white_set(&white).unwrap();
                s.ban(&ban("192.0.2.9", "old", 5), T0 - 50).unwrap();
            }
            let bans = [
                ban("192.0.2.1", "ssh", 5),
                ban("192.0.2.9", "web", 0),
                ban("192.0.2.1", "ssh", 5),
                ban("2001:db8::1", "web", 3),
                ban("2001:db8::2", "ssh", 3),
                ban(&w0, "ssh", 5),
                ban(&w1, "new", 5),
                ban("192.0.2.1", "new", 1),
                ban("192.0.2.2", "ssh", 5),
            ];
            let got = batched.ban_batch(&bans, T0).unwrap();
            let want: Vec<_> = bans.iter().map(|x| single.ban(x, T0).unwrap()).collect();
            assert_eq!(got, want, "{ranges} whitelist ranges");
            assert_eq!(
                batched.list_records(None).unwrap(),
                single.list_records(None).unwrap()
            );
            assert_eq!(
                batched.reason_stats().unwrap(),
                single.reason_stats().unwrap()
            );
            assert_eq!(batched.lookup(key("192.0.2.1")).unwrap().unwrap().caught, 3);
            assert!(batched.lookup(key(&w0)).unwrap().is_none(), "whitelisted");
        }
    }

    /// The batched key-value calls: values in the keys' order, `None` for a missing key, the last
    /// of a key given twice, and the meta table's per-host notes beside its shared keys.
    pub fn get_many_and_put_many(b: Engine) {
        let (_dir, s) = fresh(b);
        let k = |i: u8| [i; 16];
        s.write(&mut |tx| {
            tx.put(Table::Block, &k(1), b"one")?;
            tx.put_many(
                Table::Block,
                &[
                    (&k(2), b"two"),
                    (&k(3), b"three"),
                    (&k(2), b"TWO"),
                    (&k(1), b"ONE"),
                ],
            )?;
            tx.put_many(Table::Block, &[])?;
            tx.put_many(
                Table::Meta,
                &[(b"note:a", b"x"), (b"shared:test", b"y"), (b"note:a", b"z")],
            )
        })
        .unwrap();
        let got = s
            .read(&mut |tx| {
                Ok((
                    tx.get_many(Table::Block, &[&k(3), &k(9), &k(1), &k(2), &k(3)])?,
                    tx.get_many(Table::Block, &[])?,
                    tx.get_many(Table::Meta, &[b"shared:test", b"note:a", b"note:b"])?,
                    tx.len(Table::Block)?,
                ))
            })
            .unwrap();
        let v = |t: &[u8]| Some(t.to_vec());
        assert_eq!(
            got.0,
            vec![v(b"three"), None, v(b"ONE"), v(b"TWO"), v(b"three")]
        );
        assert!(got.1.is_empty());
        assert_eq!(got.2, vec![v(b"y"), v(b"z"), None]);
        assert_eq!(got.3, 3);
        assert_eq!(
            s.note(b"a").unwrap(),
            v(b"z"),
            "a note is a meta key under note:"
        );
        // Keys of several tables at once: in their order, a key twice, missing ones, notes.
        let each = s
            .read(&mut |tx| {
                Ok((
                    tx.get_each(&[
                        (Table::Meta, b"shared:test"),
                        (Table::Block, &k(2)),
                        (Table::ReasonText, b"nothing"),
                        (Table::Meta, b"note:a"),
                        (Table::Block, &k(9)),
                        (Table::Block, &k(2)),
                        (Table::Meta, b"note:b"),
                    ])?,
                    tx.get_each(&[])?,
                ))
            })
            .unwrap();
        assert_eq!(
            each.0,
            vec![v(b"y"), v(b"TWO"), None, v(b"z"), None, v(b"TWO"), None]
        );
        assert!(each.1.is_empty());
    }

    pub fn report_states_quota_and_candidates(b: Engine) {
        let (_dir, s) = fresh(b);
        s.ban_batch(
            &[
                ban("198.18.0.1", "ssh", 5),
                ban("198.18.0.2", "web", 5),
                ban("198.18.0.3", "ssh", 0),
            ],
            T0,
        )
        .unwrap();
        s.ban(&ban("198.18.0.4", "ssh", 5), T0 - 100).unwrap();
        let ssh = s.find_reason("ssh").unwrap().unwrap();
        s.set_category(ssh.id, 18).unwrap();
        s.white_set(&[WhiteEntry {
            range: range("198.18.0.3"),
            decay: 60,
        }])
        .unwrap();
        // Only categorised reasons, only bans at or after `since`, whitelist flagged.
        let c = s.report_candidates(T0 - 10).unwrap();
        let keys: Vec<String> = c.iter().map(|c| c.key.to_string()).collect();
        assert_eq!(keys, ["198.18.0.1", "198.18.0.3"]);
        assert_eq!(c[0].reason.category, 18);
        assert_eq!(c[0].record.last_update, T0);
        assert_eq!((c[0].whitelisted, c[1].whitelisted), (false, true));
        assert_eq!(c[0].state, None);
        assert_eq!(s.report_candidates(T0 - 100).unwrap().len(), 3);

        let k = key("198.18.0.1");
        let sent = ReportState {
            kind: ReportKind::Sent,
            ban_time: T0,
            at: T0 + 1,
            status: 0,
        };
        assert_eq!(
            s.report_begin(k, None, sent, Some(2)).unwrap(),
            ReportBegin::Started
        );
        // A second reporter that selected the same key before the first began is turned away.
        assert_eq!(
            s.report_begin(k, None, sent, Some(2)).unwrap(),
            ReportBegin::Changed
        );
        assert_eq!(s.report_quota_used(T0 + 1).unwrap(), 1);
        let c = s.report_candidates(T0).unwrap();
        assert_eq!(c[0].state, Some(sent));
        let accepted = ReportState {
            kind: ReportKind::Accepted,
            status: 200,
            ..sent
        };
        s.report_finish(k, Some(accepted)).unwrap();
        assert_eq!(s.report_states().unwrap(), vec![(k, accepted)]);

        // What a pass read its candidates by is checked again when it begins a report: no start
        // for an address whitelisted, deleted or banned again (another ban time) since.
        for (addr, why) in [
            ("198.18.0.3", "whitelisted"),
            ("198.18.0.9", "no record"),
            ("198.18.0.4", "another ban"),
        ] {
            assert_eq!(
                s.report_begin(key(addr), None, sent, None).unwrap(),
                ReportBegin::Changed,
                "{why}"
            );
        }
        assert_eq!(s.report_states().unwrap().len(), 1, "nothing recorded");
        assert_eq!(s.report_quota_used(T0 + 1).unwrap(), 1, "nothing counted");

        // The day's quota: the second start counts, the third is refused and records nothing.
        let k2 = key("198.18.0.4");
        let sent = ReportState {
            ban_time: T0 - 100,
            ..sent
        };
        assert_eq!(
            s.report_begin(k2, None, sent, Some(2)).unwrap(),
            ReportBegin::Started
        );
        s.report_finish(k2, None).unwrap();
        assert_eq!(
            s.report_states().unwrap().len(),
            1,
            "None forgets the attempt"
        );
        assert_eq!(
            s.report_begin(k2, None, sent, Some(2)).unwrap(),
            ReportBegin::QuotaExhausted { used: 2 }
        );
        assert_eq!(s.report_states().unwrap().len(), 1);
        // The next UTC day starts from 0.
        let tomorrow = ReportState {
            at: T0 + 86_400,
            ..sent
        };
        assert_eq!(s.report_quota_used(tomorrow.at).unwrap(), 0);
        assert_eq!(
            s.report_begin(k2, None, tomorrow, Some(2)).unwrap(),
            ReportBegin::Started
        );
        assert_eq!(s.report_quota_used(tomorrow.at).unwrap(), 1);
        let web = ReportState {
            ban_time: T0,
            ..tomorrow
        };
        assert_eq!(
            s.report_begin(key("198.18.0.2"), None, web, None).unwrap(),
            ReportBegin::Started,
            "no quota"
        );

        // Pruning forgets attempts started before the given time, only those.
        assert_eq!(s.report_prune(T0 + 2).unwrap(), 1);
        let left: Vec<AddrKey> = s.report_states().unwrap().iter().map(|e| e.0).collect();
        assert_eq!(left, [key("198.18.0.2"), k2]);

        // A state that cannot be read is corruption, named.
        s.write(&mut |tx| tx.put(Table::Report, &k.to_bytes(), b"junk"))
            .unwrap();
        let e = s.report_states().unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("report state for 198.18.0.1"), "{e}");
    }

    /// A database of the version before the report table: opening it adds the table, empty, and
    /// keeps everything else (the format stays `ipqbdb-2`: older programs ignore the new table).
    pub fn database_without_report_table_gets_it(b: Engine) {
        // Made and aged in other processes: this one must not have the environment open (LMDB
        // keeps table handles per process, and no program removes a table in real life).
        let db = TestDb::new(b);
        let dir = &db;
        // A server's table is dropped by its superuser (the worker knows local files only).
        let steps: &[&[&str]] = match &db.server {
            Some(_) => &[&["ban-loop", "1", "45"]],
            None => &[&["ban-loop", "1", "45"], &["drop-table", "report"]],
        };
        for &args in steps {
            let out = Command::new(WORKER)
                .arg(b.name())
                .arg(dir.path())
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if let (Some(server), Some(name)) = (&db.server, db.dbname()) {
            server.psql(&name, "DROP TABLE ipqbdb_report");
        }
        let s = open_any(dir.path(), b).unwrap();
        let banned = s
            .lookup(key("192.0.2.1"))
            .unwrap()
            .expect("the worker's ban");
        assert!(s.report_states().unwrap().is_empty());
        let started = ReportState {
            kind: ReportKind::Sent,
            ban_time: banned.last_update,
            at: T0,
            status: 0,
        };
        assert_eq!(
            s.report_begin(key("192.0.2.1"), None, started, None)
                .unwrap(),
            ReportBegin::Started
        );
        assert_eq!(s.report_states().unwrap().len(), 1);
        let format = s.read(&mut |tx| tx.get(Table::Meta, b"format")).unwrap();
        assert_eq!(format.as_deref(), Some(&b"ipqbdb-2"[..]));
    }
}

/// How many entries of `entries` repeat an earlier range (and so replace it).
fn dupes(entries: &[WhiteEntry]) -> usize {
    let mut seen = std::collections::HashSet::new();
    entries.iter().filter(|e| !seen.insert(e.range)).count()
}

/// Expands to one `#[test]` per suite case for `$backend`. Adding a case here adds it for every engine.
macro_rules! cases {
    ($backend:expr) => {
        cases!(@each $backend;
            directory_records_backend,
            missing_database_is_not_created_without_create,
            ban_new_raise_and_reach_max,
            addresses_are_normalised,
            whitelist_ranges_narrowest_wins,
            reasons_categories_and_statistics,
            block_counters_batch,
            listing_and_range_deletion,
            retention_rule,
            failed_write_rolls_back,
            notes_commit_with_bans,
            persists_and_refuses_foreign_format,
            concurrent_processes,
            sigkill_mid_transaction,
            backward_scan_from_the_empty_key_visits_nothing,
            ipv6_prefix_is_a_database_setting,
            ipv6_prefix_change_rewrites_and_merges,
            counters_near_the_maximum_saturate,
            selected_deletion_checks_age_in_its_transaction,
            zero_ban_decay_is_refused,
            whitelist_lookup_matches_a_full_search,
            version_1_whitelist_is_migrated,
            report_states_quota_and_candidates,
            database_without_report_table_gets_it,
            batched_bans_equal_bans_one_by_one,
            get_many_and_put_many,
        );
    };
    (@each $backend:expr; $($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            super::suite::$case($backend);
        }
    )*};
}

#[cfg(feature = "sqlite")]
mod sqlite {
    cases!(ipqbdb_store::Engine::Sqlite);
}

#[cfg(feature = "lmdb")]
mod lmdb {
    cases!(ipqbdb_store::Engine::Lmdb);
}

#[cfg(feature = "redb")]
mod redb {
    cases!(ipqbdb_store::Engine::Redb);
}

/// Against a private server per case (see `ipqbdb_tests::postgres`).
#[cfg(feature = "postgres")]
mod postgres {
    cases!(ipqbdb_store::Engine::Postgres);
}

#[test]
fn record_is_37_bytes() {
    // The benchmark's size figures assume this encoding.
    assert_eq!(Record::ENCODED_LEN, 37);
    let _ = Path::new(WORKER);
}
