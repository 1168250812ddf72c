//! Running a filter on a line as fail2ban 1.0.x does: timestamp, `prefregex`, failregexes in
//! order, `ignoreregex`, the multi-line buffer and the connection a line belongs to.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::IpAddr;

use super::filter::{FilterMatch, ImportedFilter};
use super::mlfid::truthy;
use crate::hybrid_regex::{fast_captures, Groups, HybridRegex};

impl ImportedFilter {
    /// Cuts the timestamp out of `line`, as fail2ban does before its regexes run.
    pub fn strip_date<'a>(&self, line: &'a str) -> Cow<'a, str> {
        for d in &self.dates {
            if let Some((s, e)) = d.find(line) {
                if s == e {
                    continue;
                }
                let mut out = String::with_capacity(line.len() - (e - s));
                out.push_str(&line[..s]);
                out.push_str(&line[e..]);
                return Cow::Owned(out);
            }
        }
        Cow::Borrowed(line)
    }

    /// What `line` is (its timestamp still on it).
    pub fn check(&self, line: &str) -> FilterMatch {
        let msg = self.strip_date(line);
        self.check_message(&msg)
    }

    /// What a line is whose timestamp was already taken off (journal entries).
    pub fn check_message(&self, msg: &str) -> FilterMatch {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        let multiline = self.maxlines > 1;
        let mut buf: Cow<'_, str> = if multiline {
            state.buffer.push_back(msg.to_string());
            while state.buffer.len() > self.maxlines {
                state.buffer.pop_front();
            }
            let mut b = String::new();
            for l in &state.buffer {
                b.push_str(l);
                b.push('\n');
            }
            Cow::Owned(b)
        } else {
            Cow::Borrowed(msg)
        };
        let mut pre = Groups::new();
        // The prefregex's groups are still to be captured from this line (see `pref_head`).
        let mut pre_pending: Option<&str> = None;
        let head_end = self
            .pref_head
            .as_ref()
            .map(|h| h.find(&buf).map(|m| m.end()));
        if let (Some(head_end), Cow::Borrowed(line)) = (head_end, &buf) {
            match head_end {
                None => return FilterMatch::Miss,
                Some(end) if end < line.len() => {
                    pre_pending = Some(line);
                    buf = Cow::Borrowed(&line[end..]);
                }
                Some(_) => {}
            }
        }
        if let Some(p) = self.pref.filter(|_| pre_pending.is_none()) {
            let Some((_, mut g)) = self.regexes[p].regex.captures(&buf) else {
                return FilterMatch::Miss;
            };
            if let Some(content) = g.remove("content") {
                if multiline {
                    state.buffer.clear();
                    state.buffer.push_back(content.clone());
                }
                buf = Cow::Owned(content);
            }
            pre = g;
        }
        let any_fast = self.fast_set.as_ref().is_none_or(|set| set.is_match(&buf));
        for &i in &self.fail {
            let regex = &self.regexes[i].regex;
            let fast = matches!(regex, HybridRegex::Fast(_));
            // A DFA says cheaply that a line does not match, before any capture search; on the
            // backtracking engine a test costs as much as the captures, so only they run.
            if fast && (!any_fast || !regex.is_match(&buf)) {
                continue;
            }
            let Some((span, groups)) = regex.captures(&buf) else {
                continue;
            };
            if self
                .ignore
                .iter()
                .any(|&j| self.regexes[j].regex.is_match(&buf))
            {
                if multiline {
                    drop_matched(&mut state.buffer, &buf, span);
                }
                return FilterMatch::Miss;
            }
            if multiline {
                drop_matched(&mut state.buffer, &buf, span);
            }
            // The head's own captures are the prefregex's: its first choice, ending before the
            // line does, is the prefregex's too, as `.+$` follows it whatever it chose. Captured
            // over the head alone, they cost a fraction of the whole line's.
            if let (Some(line), Some(head)) = (pre_pending, &self.pref_head) {
                if let Some((_, g)) = fast_captures(head, line) {
                    pre = g;
                }
            }
            let mut fail = pre.clone();
            fail.extend(groups);
            merge_alternates(&mut fail);
            let mlfid = fail.get("mlfid").cloned();
            let fail = match &mlfid {
                Some(id) => {
                    let merged = state.mlfid.merge(id, fail);
                    if truthy(&merged, "nofail") {
                        return FilterMatch::Noted;
                    }
                    merged
                }
                None => fail,
            };
            let ip = fail.get("ip4").or_else(|| fail.get("ip6"));
            return match ip {
                Some(text) => match text.parse::<IpAddr>() {
                    Ok(ip) => FilterMatch::Failure(ip),
                    Err(_) => FilterMatch::NotAnAddress(text.clone()),
                },
                None => {
                    if let Some(id) = &mlfid {
                        // The connection's address is not known yet: count it when it is.
                        state.mlfid.set_pending(id);
                        FilterMatch::Noted
                    } else if let Some(fid) = fail.get("fid").or_else(|| fail.get("dns")) {
                        match fid.parse::<IpAddr>() {
                            Ok(ip) => FilterMatch::Failure(ip),
                            Err(_) => FilterMatch::NotAnAddress(fid.clone()),
                        }
                    } else {
                        FilterMatch::Noted
                    }
                }
            };
        }
        FilterMatch::Miss
    }
}

/// Removes the lines a multi-line match used from the buffer (fail2ban keeps the others).
fn drop_matched(buffer: &mut VecDeque<String>, buf: &str, (start, end): (usize, usize)) {
    let first = buf[..start].matches('\n').count();
    // (`start` and `end` are the regex's, so both are character boundaries.)
    let last = buf[..end.max(start)]
        .trim_end_matches('\n')
        .matches('\n')
        .count();
    let last = last.max(first);
    for _ in first..=last.min(buffer.len().saturating_sub(1)) {
        if first < buffer.len() {
            buffer.remove(first);
        }
    }
}

/// fail2ban's `alt_` groups: `alt_user` (or `alt_user_2`) fills `user` when that is empty.
fn merge_alternates(fail: &mut Groups) {
    let alts: Vec<(String, String)> = fail
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("alt_")?;
            let n = n
                .rsplit_once('_')
                .filter(|(_, d)| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .map_or(n, |(a, _)| a);
            Some((n.to_string(), v.clone()))
        })
        .collect();
    for (n, v) in alts {
        if !v.is_empty() && !truthy(fail, &n) {
            fail.insert(n, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn filter(dir: &Path, name: &str, text: &str) -> ImportedFilter {
        std::fs::write(dir.join(format!("{name}.conf")), text).unwrap();
        ImportedFilter::load(dir, &name.parse().unwrap()).unwrap()
    }

    #[test]
    fn dates_prefregex_and_regex_crates() {
        let tmp = tempfile::tempdir().unwrap();
        let f = filter(
            tmp.path(),
            "svc",
            "[Definition]\nprefregex = ^\\s*\\S+ svc\\[<F-MLFID>\\d+</F-MLFID>\\]: <F-CONTENT>.+</F-CONTENT>$\nfailregex = ^bad (?P<q>')?user <F-USER>\\S+</F-USER>(?(q)') from <HOST>$\n            ^<F-NOFAIL>connect from <HOST></F-NOFAIL>$\n            ^too many failures$\nignoreregex = from 192\\.0\\.2\\.99$\n",
        );
        let crates: Vec<&str> = f.regexes.iter().map(|r| r.regex.name()).collect();
        assert_eq!(crates, ["regex", "fancy-regex", "regex", "regex", "regex"]);
        let ip = |s: &str| FilterMatch::Failure(s.parse().unwrap());
        assert_eq!(
            f.check("Nov 21 10:00:00 gw svc[7]: bad 'user x' from 192.0.2.1"),
            ip("192.0.2.1")
        );
        assert_eq!(
            f.check("Nov 21 10:00:00 gw svc[7]: bad 'user x from 192.0.2.1"),
            FilterMatch::Miss
        );
        assert_eq!(
            f.check("Nov 21 10:00:00 gw svc[7]: bad user x from 192.0.2.99"),
            FilterMatch::Miss
        );
        // A connection's address comes from an earlier line.
        assert_eq!(
            f.check("Nov 21 10:00:01 gw svc[8]: connect from 192.0.2.2"),
            FilterMatch::Noted
        );
        assert_eq!(
            f.check("Nov 21 10:00:02 gw svc[8]: too many failures"),
            ip("192.0.2.2")
        );
        assert_eq!(
            f.check("Nov 21 10:00:02 gw svc[9]: too many failures"),
            FilterMatch::Noted
        );
        assert_eq!(
            f.check("2026-11-21T10:00:00+01:00 gw svc[70]: bad user y from 2001:db8::1"),
            ip("2001:db8::1")
        );
    }
}
