//! `#[root_test("what it needs")]`: a test that needs root (network namespaces, iptables, mounts,
//! BPF). It runs when the crate's `root-tests` feature is on, as `cargo test --all-features` (the
//! README's test command) turns it on, and is otherwise listed as ignored with the reason, so a
//! plain `cargo test` by a user without root says what it left out instead of failing on it.
//!
//! `#[root_test("what it needs", timing)]`: such a test with a timing bound, which runs alone in
//! its binary (see `ipqbdb_tests::timing`); every root test takes that crate's lock, shared or,
//! with `timing`, exclusive, before its body.
//!
//! One attribute instead of the same four-line `cfg_attr` at every such test. Hand-written token
//! handling, no `syn`: the attribute only prepends two attributes to the function and wraps its
//! body in a block that takes the lock.

use proc_macro::{Delimiter, Group, TokenStream, TokenTree};

#[proc_macro_attribute]
pub fn root_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = attr.into_iter().collect::<Vec<_>>();
    let (needs, timing) = match attr.as_slice() {
        [] => (None, false),
        [TokenTree::Ident(t)] if t.to_string() == "timing" => (None, true),
        [TokenTree::Literal(lit)] => (Some(lit), false),
        [TokenTree::Literal(lit), TokenTree::Punct(comma), TokenTree::Ident(t)]
            if comma.as_char() == ',' && t.to_string() == "timing" =>
        {
            (Some(lit), true)
        }
        _ => {
            return error(
                "#[root_test] takes what the test needs root for (a string), then `timing` if \
                 the test has a timing bound",
            )
        }
    };
    let needs = match needs {
        None => None,
        Some(lit) => {
            let text = lit.to_string();
            match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                Some(inner) => Some(inner.to_string()),
                None => return error("#[root_test] takes a string: what the test needs root for"),
            }
        }
    };
    let reason = match needs {
        Some(needs) => format!("needs root ({needs})"),
        None => "needs root".to_string(),
    };
    let prefix = format!(
        "#[test] #[cfg_attr(not(feature = \"root-tests\"), ignore = \"{reason}: run with \
         --features root-tests or --all-features\")]"
    );
    let mut out: TokenStream = prefix.parse().expect("well-formed attributes");
    out.extend(hold_load_lock(item, timing));
    out
}

/// The function with its body inside a block that first takes `ipqbdb_tests::timing`'s lock:
/// exclusively for a test with a timing bound, shared for the others. The body stays a block of
/// its own (the tail of the new one), so its inner attributes, `return`s and value are unchanged.
fn hold_load_lock(item: TokenStream, timing: bool) -> TokenStream {
    let mut tokens = item.into_iter().collect::<Vec<_>>();
    let Some(body) = tokens
        .iter()
        .rposition(|t| matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace))
    else {
        return error("#[root_test] goes on a function with a body");
    };
    let take = if timing { "exclusive" } else { "alongside" };
    let mut inner: TokenStream = format!("let _load = ::ipqbdb_tests::timing::{take}();")
        .parse()
        .expect("a well-formed statement");
    inner.extend([tokens[body].clone()]);
    tokens[body] = TokenTree::Group(Group::new(Delimiter::Brace, inner));
    tokens.into_iter().collect()
}

fn error(message: &str) -> TokenStream {
    format!("compile_error!({message:?});")
        .parse()
        .expect("well-formed compile_error")
}
