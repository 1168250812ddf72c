//! The address automata of `capture` against the regex's own captures, on every line of every log
//! the rule tests read: where they decide, they must report exactly what the regex reports, and they
//! must decide for nearly every caught line (else the speed they exist for is gone).

use crate::common;

use std::path::Path;

use ipqbdb_parse::capture::{group_span, FastCapture};
use ipqbdb_parse::rules::RuleMode;

fn lines_of(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read(&path).unwrap();
            out.extend(text.split(|&b| b == b'\n').map(<[u8]>::to_vec));
        }
    }
}

#[test]
fn automata_agree_with_the_regex_captures() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut lines = Vec::new();
    lines.extend(
        common::service_lines::SERVICE_LINES
            .iter()
            .map(|(_, line, _)| line.as_bytes().to_vec()),
    );
    lines_of(&here.join("injection"), &mut lines);
    let samples = Path::new(common::FAIL2BAN_SAMPLES);
    assert!(
        samples.is_dir(),
        "{} is missing: install the Debian package fail2ban",
        samples.display()
    );
    lines_of(samples, &mut lines);
    let set = common::rules(RuleMode::Aggressive);
    let tags: Vec<&str> = set
        .rules()
        .iter()
        .flat_map(|r| r.tags.iter().map(String::as_str))
        .collect();
    let header = ipqbdb_parse::rules::header(&tags);
    let (mut matched, mut decided, mut fast_rules) = (0usize, 0usize, 0usize);
    for rule in set.rules() {
        let Some(index) = rule.address_group() else {
            continue;
        };
        let Some(fast) = FastCapture::new(rule.pattern(), index as u32) else {
            continue;
        };
        fast_rules += 1;
        for line in &lines {
            let msg = header.find(line).map_or(&line[..0], |m| &line[m.end()..]);
            for hay in [&line[..], msg] {
                let Some(caps) = rule.regex.captures(hay) else {
                    continue;
                };
                let want = caps.get(index).map(|g| g.range());
                matched += 1;
                let m = rule.regex.find(hay).unwrap();
                if let Some(got) = fast.locate(hay, m.range()) {
                    decided += 1;
                    assert_eq!(
                        Some(got),
                        want,
                        "rule at line {} on {:?}",
                        rule.line,
                        String::from_utf8_lossy(hay)
                    );
                }
                for matched in [false, true] {
                    assert_eq!(
                        group_span(&rule.regex, Some(&fast), index, hay, matched),
                        Some(want.clone())
                    );
                }
            }
        }
    }
    println!(
        "{fast_rules} of {} rules have automata; they decided {decided} of {matched} matches",
        set.rules().len()
    );
    assert!(fast_rules * 10 >= set.rules().len() * 9, "too few rules");
    assert!(matched > 500, "too few matches to judge: {matched}");
    assert!(
        decided * 100 >= matched * 95,
        "decided {decided} of {matched}"
    );
}

/// Small user rules whose span the regex crate's own search can get wrong: whatever the automata
/// answer must be what the regex's captures answer, and never a group no match captures.
#[test]
fn a_wrong_span_from_the_regex_is_not_trusted() {
    // regex-automata 0.4.18's full DFA ends this match at 2 (`a1`), where it ends at 4 (`a1Ax`):
    // the automata used to split the wrong span and answer `1`, which no match captures.
    let pattern = " *?(?:a|ab)[^a]+?(?P<IP>x|1+?)";
    let regex = regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .unwrap();
    let fast = FastCapture::new(pattern, 1).unwrap();
    let hay = b"a1Axa\n";
    let want = regex.captures(hay).map(|c| c.get(1).map(|g| g.range()));
    let got = group_span(&regex, Some(&fast), 1, hay, false);
    assert_eq!(got, want);
    assert_ne!(got, Some(Some(1..2)));
}

proptest::proptest! {
    /// Lines made of the pieces of such rules: the automata never answer other than the regex.
    #[test]
    fn small_rules_never_disagree(pieces in proptest::collection::vec(0usize..8, 0..12)) {
        const PIECES: [&str; 8] = ["a", "b", "1", "A", "x", " ", "\n", "ab"];
        let line: String = pieces.iter().map(|&i| PIECES[i]).collect();
        for pattern in [
            " *?(?:a|ab)[^a]+?(?P<IP>x|1+?)",
            "(?:a|ab)[^a]*?(?P<IP>x|1+)",
            " ?(?:ab|a)[^a]+(?P<IP>1+?|x)A?",
        ] {
            let regex = regex::bytes::RegexBuilder::new(pattern).unicode(false).build().unwrap();
            let fast = FastCapture::new(pattern, 1).unwrap();
            let want = regex.captures(line.as_bytes()).map(|c| c.get(1).map(|g| g.range()));
            proptest::prop_assert_eq!(
                group_span(&regex, Some(&fast), 1, line.as_bytes(), false),
                want,
                "{} on {:?}", pattern, line
            );
        }
    }
}
