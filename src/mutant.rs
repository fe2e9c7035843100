//! Deliberately broken locks, for proving that the safety suite catches
//! them (its mutation rounds).
//!
//! Only with the `mutants` cargo feature, which refuses to compile in an
//! optimised build: a library built for use never has it, and without the
//! feature [`on`] is a constant `false` that the compiler removes. With it,
//! the environment variable `DISTLOCK_MUTANT` names at most one mutant,
//! read once per process.

/// One way of making the lock wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mutant {
    /// `release-no-compare`: the release script deletes the key without
    /// comparing the token.
    ReleaseNoCompare,
    /// `no-renewal`: the renewal thread sends nothing and reports every
    /// lease renewed, so a lease runs out on the server unseen.
    NoRenewal,
    /// `long-lease`: the guard believes its lease is four times the TTL
    /// the server was given.
    LongLease,
    /// `blind-retry`: a lost reply to an acquire is taken for a win,
    /// without asking the server.
    BlindRetry,
    /// `fence-resets`: fences come from a counter that starts over when
    /// the server restarts empty (no clock floor).
    FenceResets,
    /// `stale-handoff`: the local fast path ignores time: it hands a lease
    /// on after it ran out (with a fresh deadline), keeps an expired
    /// holder, and bounds a run of hand-offs by count only.
    StaleHandoff,
}

impl Mutant {
    /// Every mutant, with the name `DISTLOCK_MUTANT` takes.
    #[cfg_attr(not(feature = "mutants"), allow(dead_code))]
    pub(crate) const ALL: [(&'static str, Mutant); 6] = [
        ("release-no-compare", Mutant::ReleaseNoCompare),
        ("no-renewal", Mutant::NoRenewal),
        ("long-lease", Mutant::LongLease),
        ("blind-retry", Mutant::BlindRetry),
        ("fence-resets", Mutant::FenceResets),
        ("stale-handoff", Mutant::StaleHandoff),
    ];
}

#[cfg(all(feature = "mutants", not(debug_assertions)))]
compile_error!("the `mutants` feature breaks the lock on purpose: test builds only");

/// Whether mutant `m` is switched on in this process.
#[cfg(feature = "mutants")]
pub(crate) fn on(m: Mutant) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<Mutant>> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let name = std::env::var("DISTLOCK_MUTANT").ok()?;
        let found = Mutant::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m);
        assert!(found.is_some(), "DISTLOCK_MUTANT={name:?} names no mutant");
        found
    }) == Some(m)
}

/// Whether mutant `m` is switched on: never, without the feature.
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub(crate) const fn on(_: Mutant) -> bool {
    false
}

/// `script` with `from` replaced by `to` while mutant `m` is on (the
/// mutants that live in the Lua scripts). Panics if `from` is not in it,
/// so a script edit cannot silently turn a mutant into the real thing.
pub(crate) fn script(script: &'static str, m: Mutant, from: &str, to: &str) -> String {
    if !on(m) {
        return script.to_string();
    }
    assert!(
        script.contains(from),
        "mutant {m:?}: {from:?} not in the script"
    );
    script.replace(from, to)
}
