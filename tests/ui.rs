//! Compile-time checks of `#[on]` and `#[pipeline]`: each misuse fails with an error on the
//! user's own tokens (the `.stderr` files are the expected output), and the
//! supported forms compile. A test binary of its own: trybuild builds every
//! case as a crate, which takes a while and needs nothing else.

#[test]
#[cfg_attr(
    any(feature = "inbox", feature = "config-db"),
    ignore = "the expected compiler output lists the extractors of the default build, and the \
              inbox and config-db features add `Tx` and `Settings` (spine-cli turns config-db on \
              in workspace builds); scripts/test runs this test again with `-p spine-kafka` alone"
)]
fn on_attribute() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
