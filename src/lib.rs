//! rowtrail: the history of the data in a PostgreSQL database, captured from its write-ahead log
//! into a local SQLite cache.
//!
//! Module map (see ARCHITECTURE.md): `model` is the shared vocabulary; `decode` turns what
//! PostgreSQL sends into model values; `store` is the SQLite cache; `capture` talks to PostgreSQL;
//! `history` answers what changed, what it was then and how to put it back; `restore` writes restore
//! scripts from a cache; `retention` prunes old history and erases records; `ui` is the desktop
//! app; `cli` is the command-line face; `local_pg` runs private PostgreSQL servers for tests and
//! the demo; `demo` is the one-command demo.

pub mod capture;
pub mod cli;
pub mod decode;
pub mod demo;
pub mod history;
pub mod import;
pub mod local_pg;
pub mod model;
pub mod related;
pub mod restore;
pub mod retention;
pub mod shared;
pub mod store;
pub mod ui;
