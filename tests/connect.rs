//! Connecting: TLS modes against a server with its own certificate authority, the password file,
//! and the PG* environment variables.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rowtrail::local_pg::{LocalPgOptions, LocalPostgres};
use support::{assert_clean_failure, rowtrail, rowtrail_command};

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificate_authority("rowtrail test CA");
    let other = certificate_authority("someone else's CA");
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        other_ca: write("other-ca.pem", other.pem()),
        cert: write("server.crt", server.pem()),
        key: write("server.key", server_key.serialize_pem()),
        _dir: dir,
    }
}

fn tls_server() -> &'static (LocalPostgres, Pki) {
    static SERVER: OnceLock<(LocalPostgres, Pki)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let pki = pki();
        let server = LocalPostgres::start(&LocalPgOptions {
            tls: Some((pki.cert.clone(), pki.key.clone())),
            ..LocalPgOptions::default()
        })
        .unwrap();
        server.create_database("tls").unwrap();
        server
            .psql(
                "tls",
                "CREATE TABLE t (id int PRIMARY KEY, v text);
                 ALTER TABLE t REPLICA IDENTITY FULL;
                 INSERT INTO t VALUES (1, 'over tls');",
            )
            .unwrap();
        (server, pki)
    })
}

fn doctor(source: &str) -> std::process::Output {
    rowtrail(&["doctor".into(), "--source".into(), source.into()])
}

#[test]
fn tls_modes_follow_libpq() {
    let (server, pki) = tls_server();
    let base = |host: &str| {
        format!(
            "host={host} port={} user=postgres password={} dbname=tls",
            server.port(),
            server.password().expose()
        )
    };
    let ca = pki.ca.display();
    let accepted = [
        format!("{} sslmode=require", base("localhost")),
        format!("{} sslmode=prefer", base("localhost")),
        format!("{} sslmode=disable", base("localhost")),
        format!("{} sslmode=verify-full sslrootcert={ca}", base("localhost")),
        format!("{} sslmode=verify-ca sslrootcert={ca}", base("127.0.0.1")),
    ];
    for source in &accepted {
        let output = doctor(source);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{source}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let refused = [
        format!("{} sslmode=verify-full sslrootcert={ca}", base("127.0.0.1")),
        format!(
            "{} sslmode=verify-full sslrootcert={}",
            base("localhost"),
            pki.other_ca.display()
        ),
        format!(
            "{} sslmode=require sslrootcert={}",
            base("localhost"),
            pki.other_ca.display()
        ),
    ];
    for source in &refused {
        assert_clean_failure(&doctor(source), 2, "TLS");
    }
    let output = doctor(&format!("{} sslmode=verify-full", base("localhost")));
    assert_clean_failure(&output, 2, "needs a root certificate");
}

#[test]
fn capture_streams_over_tls() {
    let (server, pki) = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tls.db");
    let source = format!(
        "postgres://postgres:{}@localhost:{}/tls?sslmode=verify-full&sslrootcert={}",
        server.password().expose(),
        server.port(),
        pki.ca.display()
    );
    let capture = |cache: &std::path::Path| {
        rowtrail(&[
            "capture".into(),
            "--source".into(),
            source.clone(),
            "--cache".into(),
            cache.to_string_lossy().into_owned(),
            "--slot".into(),
            "tls_slot".into(),
            "--once".into(),
        ])
    };
    let output = capture(&cache);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server
        .psql("tls", "UPDATE t SET v = 'still over tls' WHERE id = 1;")
        .unwrap();
    let output = capture(&cache);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = support::log_json(&cache, &[]);
    assert_eq!(log.len(), 2);
    assert_eq!(log[1]["after"]["v"], "still over tls");
}

#[test]
fn require_against_a_server_without_tls_fails_clearly() {
    let db = support::fresh_db("notls");
    let source = db.url().replace("sslmode=disable", "sslmode=require");
    assert_clean_failure(&doctor(&source), 2, "TLS");
}

#[test]
fn password_file_and_environment() {
    let db = support::fresh_db("pgpass");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t REPLICA IDENTITY FULL;");
    let port = db.server.port();
    let passfile = db.dir.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!(
            "# test\nelsewhere:*:*:*:nope\n127.0.0.1:{port}:*:postgres:{}\n",
            db.server.password().expose()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let source = format!(
        "postgres://postgres@127.0.0.1:{port}/{}?sslmode=disable",
        db.name
    );
    let with_passfile = rowtrail_command()
        .env("PGPASSFILE", &passfile)
        .args(["doctor", "--source", &source])
        .output()
        .unwrap();
    assert_eq!(
        with_passfile.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&with_passfile.stderr)
    );

    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let too_open = rowtrail_command()
        .env("PGPASSFILE", &passfile)
        .args(["doctor", "--source", &source])
        .output()
        .unwrap();
    assert_eq!(too_open.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&too_open.stderr).contains("chmod 0600"));

    let from_environment = rowtrail_command()
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGUSER", "postgres")
        .env("PGPASSWORD", db.server.password().expose())
        .env("PGDATABASE", &db.name)
        .env("PGSSLMODE", "disable")
        .args(["doctor"])
        .output()
        .unwrap();
    assert_eq!(
        from_environment.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&from_environment.stderr)
    );
    assert!(
        String::from_utf8_lossy(&from_environment.stdout)
            .contains(&format!("/{} as postgres", db.name))
    );
}

#[test]
fn item6_channel_binding_binds_both_connections_and_require_is_honoured() {
    let (server, pki) = tls_server();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("bound.db");
    let source = format!(
        "postgres://postgres:{}@localhost:{}/tls?sslmode=verify-full&sslrootcert={}&channel_binding=require",
        server.password().expose(),
        server.port(),
        pki.ca.display()
    );
    // Both the SQL and the replication connection authenticate with SCRAM-SHA-256-PLUS, or
    // channel_binding=require would refuse them.
    let output = rowtrail(&[
        "capture".into(),
        "--source".into(),
        source,
        "--cache".into(),
        cache.to_string_lossy().into_owned(),
        "--slot".into(),
        "bound_slot".into(),
        "--once".into(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server
        .psql("tls", "SELECT pg_drop_replication_slot('bound_slot')")
        .unwrap();
    // Without TLS there is nothing to bind to: refused before any password is sent.
    let db = support::fresh_db("unbound");
    let plain = db
        .url()
        .replace("sslmode=disable", "sslmode=prefer&channel_binding=require");
    assert_clean_failure(&doctor(&plain), 2, "channel_binding=require");
    let disabled = db
        .url()
        .replace("sslmode=disable", "sslmode=disable&channel_binding=require");
    assert_clean_failure(&doctor(&disabled), 2, "channel_binding");
    let bogus = db
        .url()
        .replace("sslmode=disable", "sslmode=disable&channel_binding=maybe");
    assert_clean_failure(&doctor(&bogus), 2, "disable, prefer or require");
}
