//! The figures of the stages a server may or may not run: TLS, HTTP/2,
//! the per-client limits, the sites. One row each, as in `figures.rs`.

use super::super::sites::SitesReport;
use super::render::{counter, gauge, Figure, Series, Value};
use super::{Http2Report, PerClientReport, TlsReport};

use Value::{Count, Fixed};

pub(super) const SITE_REQUESTS: Series = counter(
    "site_requests_total",
    "Requests answered per site ([[sites]]); site=\"(default)\" is the top level.",
);

pub(super) const SITES: &[Figure<SitesReport>] = &[
    Figure::both(
        "misdirected",
        counter(
            "sites_misdirected_total",
            "Requests answered 421: the TLS server name and the host named different sites.",
        ),
        |s| Count(s.misdirected),
    ),
    Figure::both(
        "unknown_refused",
        counter(
            "sites_unknown_refused_total",
            "Requests for a host no site names, answered 404 or 421 (unknown_host).",
        ),
        |s| Count(s.unknown_refused),
    ),
];

pub(super) const TLS: &[Figure<TlsReport>] = &[
    Figure::both(
        "handshake_queue_depth",
        gauge(
            "tls_handshake_queue_depth",
            "Connections waiting for a TLS handshake.",
        ),
        |t| Count(t.depth),
    ),
    Figure::json("handshake_queue_capacity", |t| Count(t.capacity)),
    Figure::both(
        "handshakes_completed",
        counter(
            "tls_handshakes_completed_total",
            "TLS handshakes completed.",
        ),
        |t| Count(t.completed),
    ),
    Figure::both(
        "handshakes_failed",
        counter("tls_handshakes_failed_total", "TLS handshakes that failed."),
        |t| Count(t.failed),
    ),
    Figure::both(
        "handshakes_resumed",
        counter(
            "tls_handshakes_resumed_total",
            "TLS handshakes that resumed a session.",
        ),
        |t| Count(t.resumed),
    ),
    Figure::json("resumption_ratio", |t| Fixed(t.resumption_ratio(), 4)),
    Figure::both(
        "plain_http_refused",
        counter(
            "tls_plain_http_refused_total",
            "Plain HTTP sent to a TLS port (400).",
        ),
        |t| Count(t.plain_http),
    ),
    Figure::both(
        "acme_validations",
        counter(
            "tls_acme_validations_total",
            "Handshakes of an ACME CA validating tls-alpn-01 (acme-tls/1), closed after it.",
        ),
        |t| Count(t.acme_validations),
    ),
];

pub(super) const HTTP2: &[Figure<Http2Report>] = &[
    Figure::both(
        "connections",
        gauge("http2_connections", "HTTP/2 connections open."),
        |h| Count(h.connections),
    ),
    Figure::both(
        "streams_open",
        gauge("http2_streams_open", "HTTP/2 streams open."),
        |h| Count(h.streams_open),
    ),
    Figure::both(
        "streams_waiting",
        gauge(
            "http2_streams_waiting",
            "HTTP/2 streams queued for or in the handler, before their response head.",
        ),
        |h| Count(h.streams_waiting),
    ),
    Figure::both(
        "streams",
        counter("http2_streams_total", "HTTP/2 streams accepted."),
        |h| Count(h.streams),
    ),
    Figure::both(
        "calmed",
        counter(
            "http2_enhance_your_calm_total",
            "HTTP/2 connections sent GOAWAY for resetting too many streams.",
        ),
        |h| Count(h.calmed),
    ),
];

pub(super) const PER_CLIENT: &[Figure<PerClientReport>] = &[
    Figure::both(
        "refused_requests",
        counter(
            "per_client_refused_requests_total",
            "Requests answered 429: their client was over limits.per_client.rate.",
        ),
        |p| Count(p.refused_requests),
    ),
    Figure::both(
        "refused_connections",
        counter(
            "per_client_refused_connections_total",
            "Connections answered 503 at accept: their address held limits.per_client.connections.",
        ),
        |p| Count(p.refused_connections),
    ),
    Figure::both(
        "clients",
        gauge("per_client_clients", "Clients in the per-client table."),
        |p| Count(p.clients),
    ),
    Figure::both(
        "capacity",
        gauge(
            "per_client_capacity",
            "Clients the per-client table holds at most.",
        ),
        |p| Count(p.capacity),
    ),
    Figure::both(
        "evictions",
        counter(
            "per_client_evictions_total",
            "Clients forgotten to make room in the per-client table.",
        ),
        |p| Count(p.evictions),
    ),
    Figure::both(
        "untracked",
        counter(
            "per_client_untracked_total",
            "Clients let through uncounted: their part of the table was all open connections.",
        ),
        |p| Count(p.untracked),
    ),
];
