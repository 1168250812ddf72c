//! `#[root_test("what it needs")]`: a test that needs root (network namespaces, iptables, mounts,
//! BPF). It runs when the crate's `root-tests` feature is on, as `cargo test --all-features` (the
//! README's test command) turns it on, and is otherwise listed as ignored with the reason, so a
//! plain `cargo test` by a user without root says what it left out instead of failing on it.
//!
//! One attribute instead of the same four-line `cfg_attr` at every such test. Hand-written token
//! handling, no `syn`: the attribute only prepends two attributes to the function.

use proc_macro::{TokenStream, TokenTree};

#[proc_macro_attribute]
pub fn root_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let needs = match attr.into_iter().collect::<Vec<_>>().as_slice() {
        [] => None,
        [TokenTree::Literal(lit)] => {
            let text = lit.to_string();
            match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                Some(inner) => Some(inner.to_string()),
                None => return error("#[root_test] takes a string: what the test needs root for"),
            }
        }
        _ => return error("#[root_test] takes one string: what the test needs root for"),
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
    out.extend(item);
    out
}

fn error(message: &str) -> TokenStream {
    format!("compile_error!({message:?});")
        .parse()
        .expect("well-formed compile_error")
}
