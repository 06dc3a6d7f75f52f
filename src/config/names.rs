//! Closed sets of names a config value or flag may take: the stages, the
//! overload policy, the revalidation and poll modes. Each set is written once,
//! in a `names!` invocation, and everything else (config, CLI, `/status`,
//! tests, benches) goes through `ALL`, `NAMES`, `FromStr` and `Display`.

use std::fmt;
use std::str::FromStr;

use crate::runtime::PollMode;

/// A name that is not in a set; says which names are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    given: String,
    what: &'static str,
    names: &'static [&'static str],
}

impl UnknownName {
    /// The message after the value: `is not a known acceptor; use one of "readiness", ...`.
    pub fn reason(&self) -> String {
        let list: Vec<String> = self.names.iter().map(|n| format!("\"{n}\"")).collect();
        format!(
            "is not a known {}; use one of {}",
            self.what,
            list.join(", ")
        )
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.given, self.reason())
    }
}

impl std::error::Error for UnknownName {}

/// Gives an enum its one list of names: `ALL`, `NAMES`, `name()`,
/// `help()`, `Display` and `FromStr`.
macro_rules! impl_names {
    ($ty:ident, $what:literal, $($variant:ident = $name:literal: $help:literal),+ $(,)?) => {
        impl $ty {
            /// Every variant, in the order help and messages list them.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];
            /// The name of each of [`Self::ALL`], as written in config and flags.
            pub const NAMES: [&'static str; [$($name),+].len()] = [$($name),+];

            /// The name as written in config and flags.
            pub const fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }

            /// What it does, in one line (for `--help`).
            pub const fn help(self) -> &'static str {
                match self {
                    $($ty::$variant => $help,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<$ty, UnknownName> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(UnknownName {
                        given: s.to_string(),
                        what: $what,
                        names: &$ty::NAMES,
                    }),
                }
            }
        }
    };
}

/// Declares an enum and gives it its names (see `impl_names!`).
macro_rules! names {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident as $what:literal {
            $($variant:ident = $name:literal: $help:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $ty {
            $(#[doc = $help] $variant,)+
        }
        impl_names!($ty, $what, $($variant = $name: $help),+);

        impl super::Blank for $ty {
            fn blank() -> $ty {
                $ty::ALL[0]
            }
        }
    };
}

names! {
    /// The built-in acceptors (`stages.acceptor`, `--acceptor`).
    pub enum AcceptorKind as "acceptor" {
        Readiness = "readiness": "one listener, accepted when the poller says it is ready",
        ReusePort = "reuseport": "one SO_REUSEPORT listener per worker, spread by the kernel",
        Spin = "spin": "accept in a loop, yielding between tries: one core at 100 % even idle",
    }
}

names! {
    /// The built-in dispatchers (`stages.dispatcher`, `--dispatcher`).
    pub enum DispatcherKind as "dispatcher" {
        Spawn = "spawn": "a new green thread per request",
        Pool = "pool": "a fixed pool of handler green threads per worker",
    }
}

names! {
    /// What the acceptor does when the pending queue is full.
    pub enum Overload as "overload policy" {
        Wait = "wait": "stop accepting; the kernel backlog absorbs the burst",
        Reject = "reject": "accept and answer 503",
        Codel = "codel": "wait, and answer new connections 503 while the queue wait stays above queue.codel_target",
    }
}

names! {
    /// What speaks HTTP/2 on a connection (`http2.engine`).
    pub enum Http2Engine as "HTTP/2 engine" {
        Native = "native": "the server's own framing, HPACK and flow control: one green thread per connection",
        H2 = "h2": "the h2 crate (hyper's), on this runtime through an I/O adapter",
    }
}

names! {
    /// How the static-file cache checks a file before serving it. With
    /// inotify, one read of its queue per scheduler turn covers every
    /// request read in that turn.
    pub enum Revalidate as "revalidation mode" {
        Stat = "stat": "stat(2) the file once per read of requests",
        Inotify = "inotify": "inotify watches cached files and reports changes",
    }
}

names! {
    /// How much the server tells stderr (`log.level`, `--verbose`).
    pub enum LogLevel as "log level" {
        Info = "info": "start-up, warnings and errors",
        Debug = "debug": "also one line per refused request, saying why (missing, dotfile, outside the root...)",
    }
}

names! {
    /// What a request for a host no `[[sites]]` entry names gets
    /// (`unknown_host`).
    pub enum UnknownHost as "unknown-host answer" {
        TopLevel = "default": "the top-level site: the root and settings outside [[sites]]",
        NotFound = "404": "404 Not Found",
        Misdirected = "421": "421 Misdirected Request",
    }
}

names! {
    /// How the ACME CA validates that the server holds a name
    /// (`acme.challenge`).
    pub enum AcmeChallenge as "ACME challenge" {
        TlsAlpn01 = "tls-alpn-01": "a TLS handshake on port 443 offering acme-tls/1 (RFC 8737)",
        Http01 = "http-01": "a plain GET of /.well-known/acme-challenge/TOKEN on port 80",
    }
}

// The runtime's own type: the runtime knows nothing of config, so the names
// it is given in config live here with the others.
impl_names!(
    PollMode,
    "poll mode",
    Edge = "edge": "register once, edge-triggered",
    Oneshot = "oneshot": "re-arm per event",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in AcceptorKind::ALL {
            assert_eq!(kind.name().parse(), Ok(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        for kind in DispatcherKind::ALL {
            assert_eq!(kind.name().parse(), Ok(kind));
        }
        for mode in PollMode::ALL {
            assert_eq!(mode.name().parse(), Ok(mode));
        }
        assert_eq!(AcceptorKind::NAMES, ["readiness", "reuseport", "spin"]);
    }

    #[test]
    fn unknown_name_lists_the_names() {
        let e = "fast".parse::<AcceptorKind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"fast\" is not a known acceptor; use one of \"readiness\", \"reuseport\", \"spin\""
        );
        let e = "level".parse::<PollMode>().unwrap_err();
        assert_eq!(
            e.reason(),
            "is not a known poll mode; use one of \"edge\", \"oneshot\""
        );
    }
}
