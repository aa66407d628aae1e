//! The shared store beside the cache file: one synthetic cache published into PostgreSQL (the
//! same copy `capture --into` makes), then the query part run on both through the same library
//! calls, the store read over TCP like a team's desktops read it.

use std::path::Path;
use std::time::Instant;

use rowtrail::capture::conninfo::{ConnectionSpec, ProcessEnvironment};
use rowtrail::model::Xid;
use rowtrail::shared::Publisher;

use crate::queries::{self, QueryFigures};
use crate::server::Server;

pub struct SharedFigures {
    pub publish_seconds: f64,
    pub published: u64,
    pub store_bytes: u64,
    pub file_bytes: u64,
    pub file: QueryFigures,
    pub store: QueryFigures,
}

pub fn measure(server: &Server, cache: &Path, bulk: Xid, quick: bool) -> SharedFigures {
    const DATABASE: &str = "bench_store";
    server.create_database(DATABASE);
    let url = server.pg.url(DATABASE);
    let spec = ConnectionSpec::resolve(&url, &ProcessEnvironment).unwrap();
    eprintln!("publishing {} into {DATABASE}", cache.display());
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let published = runtime.block_on(async {
        let mut publisher = Publisher::connect(&spec, cache).await.unwrap();
        publisher.publish_all().await.unwrap()
    });
    let publish_seconds = started.elapsed().as_secs_f64();
    // What autovacuum would have done by the time a team reads it.
    server.sql(DATABASE, "VACUUM ANALYZE");
    let store_bytes: u64 = server
        .value(
            DATABASE,
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'rowtrail' AND c.relkind = 'r'",
        )
        .parse()
        .unwrap();
    eprintln!("queries on the cache file");
    let file = queries::measure(cache, bulk, quick);
    eprintln!("queries on the shared store");
    let store = queries::measure(Path::new(&url), bulk, quick);
    SharedFigures {
        publish_seconds,
        published: published.changes,
        store_bytes,
        file_bytes: crate::server::file_size(cache),
        file,
        store,
    }
}

/// The query part on the file and on a store published from it before (no publishing figures).
pub fn measure_published(url: &str, cache: &Path, bulk: Xid, quick: bool) -> SharedFigures {
    eprintln!("queries on the cache file");
    let file = queries::measure(cache, bulk, quick);
    eprintln!("queries on the shared store at {url}");
    let store = queries::measure(Path::new(url), bulk, quick);
    SharedFigures {
        publish_seconds: f64::NAN,
        published: 0,
        store_bytes: 0,
        file_bytes: crate::server::file_size(cache),
        file,
        store,
    }
}
