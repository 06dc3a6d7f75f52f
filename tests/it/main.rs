//! Conveyor's integration tests, one binary: each module was once its own
//! test binary, and each linked rustls, ring and brotli and compiled the
//! harness again. `harness` holds every shared helper once.

mod harness;

mod access_log;
mod auth;
mod bench_cli;
mod bench_h2;
mod cli;
mod cli_start_stop;
mod compress_cache;
mod compression;
mod config_swap;
mod confinement;
mod connections;
mod container;
mod dashboard;
mod dependencies;
mod deploy;
mod dispatch;
mod docs;
mod echo;
mod first_hour;
mod fuzz_corpus;
mod h2spec;
mod hardening_service;
mod http2;
mod http2_attacks;
mod http2_listeners;
mod layers;
mod library_api;
mod library_example;
mod lingering;
mod listen_and_stop;
mod listeners;
mod not_found;
mod per_client;
mod per_client_step;
mod probes;
mod prometheus;
mod protocol;
mod proxy;
mod redirect_case;
mod redirects;
mod reload;
mod reserved_paths;
mod runtime;
mod site;
mod sites;
mod slow_bodies;
mod small_fixes;
mod smoke;
mod socket_activation;
mod static_files;
mod tls;
mod user_switch;
