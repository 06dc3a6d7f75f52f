//! What the handler serves: `/echo`, `/status` and static files.

pub mod static_files;
