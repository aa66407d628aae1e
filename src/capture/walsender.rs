//! A replication-mode connection to a PostgreSQL walsender, written on `postgres-protocol`.
//!
//! tokio-postgres 0.7 cannot open replication connections or speak CopyBoth, and the crates that
//! can (see ARCHITECTURE.md) either lack `CREATE_REPLICATION_SLOT ... EXPORT_SNAPSHOT`, which the
//! baseline needs, or always send options PostgreSQL 10–13 reject. The surface needed is small:
//! startup with TLS and password/MD5/SCRAM authentication, simple queries for replication
//! commands, and CopyData frames both ways once `START_REPLICATION` has begun.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use postgres_protocol::message::{backend::Message, frontend};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::model::Lsn;

use super::conninfo::{ConnectionSpec, Endpoint, Host, Password, SslMode};
use super::encoding::Reception;
use super::error::{CaptureError, ServerError};
use super::tls;

trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// What `IDENTIFY_SYSTEM` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// The cluster's unique system identifier (from `initdb`).
    pub system_id: String,
    pub timeline: u32,
    /// The server's current WAL flush position.
    pub flushed: Lsn,
}

/// A slot created with an exported snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    /// Changes committed after this position are streamed; the snapshot shows everything before.
    pub consistent_point: Lsn,
    /// Valid for `SET TRANSACTION SNAPSHOT` until the next command on this connection.
    pub snapshot_name: String,
}

/// An authenticated connection in replication mode.
pub struct WalSender {
    io: Box<dyn Transport>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    parameters: HashMap<String, String>,
    endpoint: String,
}

impl WalSender {
    /// Connects to the first endpoint of `spec` that accepts a replication connection.
    /// `reception` decides whether the server converts text to UTF-8 or sends its own bytes.
    pub async fn connect(
        spec: &ConnectionSpec,
        tls: Option<Arc<ClientConfig>>,
        reception: Reception,
    ) -> Result<Self, CaptureError> {
        super::session::first_reachable(spec, |endpoint| {
            Self::connect_one(spec, endpoint, tls.clone(), reception)
        })
        .await
    }

    async fn connect_one(
        spec: &ConnectionSpec,
        endpoint: &Endpoint,
        tls: Option<Arc<ClientConfig>>,
        reception: Reception,
    ) -> Result<Self, CaptureError> {
        let name = endpoint.to_string();
        let io = tokio::time::timeout(spec.connect_timeout, open_transport(spec, endpoint, tls))
            .await
            .map_err(|_| CaptureError::Connect {
                endpoint: name.clone(),
                reason: format!("no answer within {} s", spec.connect_timeout.as_secs()),
            })??;
        let mut connection = Self {
            io,
            read_buf: BytesMut::with_capacity(64 * 1024),
            write_buf: BytesMut::with_capacity(1024),
            parameters: HashMap::new(),
            endpoint: name,
        };
        tokio::time::timeout(
            spec.connect_timeout.max(Duration::from_secs(10)),
            connection.startup(spec, endpoint, reception),
        )
        .await
        .map_err(|_| CaptureError::Connect {
            endpoint: connection.endpoint.clone(),
            reason: "the server did not finish the login handshake".into(),
        })??;
        Ok(connection)
    }

    /// `server_version_num` as a number (150004 for 15.4), from the startup parameters.
    pub fn server_version_num(&self) -> Option<u32> {
        let version = self.parameters.get("server_version")?;
        let mut parts = version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|part| !part.is_empty())
            .map(|part| part.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        Some(if major >= 10 {
            major * 10_000 + minor
        } else {
            major * 10_000 + minor * 100
        })
    }

    async fn startup(
        &mut self,
        spec: &ConnectionSpec,
        endpoint: &Endpoint,
        reception: Reception,
    ) -> Result<(), CaptureError> {
        let mut parameters = vec![
            ("user", spec.user.as_str()),
            ("database", spec.dbname.as_str()),
            ("replication", "database"),
            ("application_name", spec.application_name.as_str()),
            ("client_encoding", reception.client_encoding()),
        ];
        parameters.extend(super::session::SESSION_SETTINGS);
        if let Some(options) = &spec.options {
            parameters.push(("options", options.as_str()));
        }
        frontend::startup_message(parameters, &mut self.write_buf).map_err(self.io_error())?;
        self.flush().await?;

        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.read_message().await? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    let password = self.password(spec, endpoint)?;
                    frontend::password_message(password.expose().as_bytes(), &mut self.write_buf)
                        .map_err(self.io_error())?;
                    self.flush().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let password = self.password(spec, endpoint)?;
                    let hash = postgres_protocol::authentication::md5_hash(
                        spec.user.as_bytes(),
                        password.expose().as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf)
                        .map_err(self.io_error())?;
                    self.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut offers_scram = false;
                    let mut mechanisms = body.mechanisms();
                    while let Some(mechanism) =
                        fallible_next(&mut mechanisms).map_err(self.io_error())?
                    {
                        offers_scram |= mechanism == sasl::SCRAM_SHA_256;
                    }
                    if !offers_scram {
                        return Err(CaptureError::Protocol {
                            what: "the server offers no SASL mechanism rowtrail supports (SCRAM-SHA-256)".into(),
                        });
                    }
                    let password = self.password(spec, endpoint)?;
                    // Channel binding needs the hash named by the certificate's signature algorithm;
                    // the replication connection does without it (the SQL connections use it).
                    let state = ScramSha256::new(
                        password.expose().as_bytes(),
                        ChannelBinding::unsupported(),
                    );
                    frontend::sasl_initial_response(
                        sasl::SCRAM_SHA_256,
                        state.message(),
                        &mut self.write_buf,
                    )
                    .map_err(self.io_error())?;
                    scram = Some(state);
                    self.flush().await?;
                }
                Message::AuthenticationSaslContinue(body) => {
                    let state = scram.as_mut().ok_or_else(|| unexpected("SASL continue"))?;
                    state.update(body.data()).map_err(self.io_error())?;
                    frontend::sasl_response(state.message(), &mut self.write_buf)
                        .map_err(self.io_error())?;
                    self.flush().await?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let state = scram.as_mut().ok_or_else(|| unexpected("SASL final"))?;
                    state.finish(body.data()).map_err(self.io_error())?;
                }
                Message::ParameterStatus(body) => {
                    let name = body.name().map_err(self.io_error())?.to_owned();
                    let value = body.value().map_err(self.io_error())?.to_owned();
                    self.parameters.insert(name, value);
                }
                Message::BackendKeyData(_) | Message::NoticeResponse(_) => {}
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ErrorResponse(body) => {
                    return Err(CaptureError::server(
                        format!("logging in to {} for replication", self.endpoint),
                        ServerError::from_fields(body.fields()),
                    ));
                }
                _ => {
                    return Err(CaptureError::Protocol {
                        what: "the server sent an unsupported authentication request (rowtrail supports password, md5 and scram-sha-256)".into(),
                    });
                }
            }
        }
    }

    fn password(
        &self,
        spec: &ConnectionSpec,
        endpoint: &Endpoint,
    ) -> Result<Password, CaptureError> {
        endpoint
            .password
            .clone()
            .ok_or_else(|| CaptureError::NoPassword {
                user: spec.user.clone(),
                endpoint: self.endpoint.clone(),
            })
    }

    /// Runs one replication command and returns its rows as text.
    pub async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, CaptureError> {
        frontend::query(sql, &mut self.write_buf).map_err(self.io_error())?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::DataRow(body) => {
                    let buffer = body.buffer();
                    let mut row = Vec::new();
                    let mut ranges = body.ranges();
                    while let Some(range) = fallible_next(&mut ranges).map_err(self.io_error())? {
                        row.push(range.map(|range| {
                            String::from_utf8_lossy(buffer.get(range).unwrap_or_default())
                                .into_owned()
                        }));
                    }
                    rows.push(row);
                }
                Message::ErrorResponse(body) => {
                    error = Some(ServerError::from_fields(body.fields()));
                }
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match error {
            Some(error) => Err(CaptureError::server(format!("running {sql}"), error)),
            None => Ok(rows),
        }
    }

    pub async fn identify_system(&mut self) -> Result<SystemIdentity, CaptureError> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = rows
            .first()
            .ok_or_else(|| unexpected("empty IDENTIFY_SYSTEM"))?;
        let field = |index: usize| row.get(index).cloned().flatten();
        Ok(SystemIdentity {
            system_id: field(0).ok_or_else(|| unexpected("IDENTIFY_SYSTEM without systemid"))?,
            timeline: field(1).and_then(|text| text.parse().ok()).unwrap_or(0),
            flushed: field(2)
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| unexpected("IDENTIFY_SYSTEM without xlogpos"))?,
        })
    }

    /// Creates a `pgoutput` slot and exports a snapshot of the moment it became consistent.
    pub async fn create_slot_with_snapshot(
        &mut self,
        slot: &str,
    ) -> Result<CreatedSlot, CaptureError> {
        let version = self.server_version_num().unwrap_or(150_000);
        let sql = match version >= 150_000 {
            true => format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput (SNAPSHOT 'export')"),
            false => format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput EXPORT_SNAPSHOT"),
        };
        let rows = self.simple_query(&sql).await?;
        let row = rows
            .first()
            .ok_or_else(|| unexpected("empty CREATE_REPLICATION_SLOT"))?;
        let field = |index: usize| row.get(index).cloned().flatten();
        Ok(CreatedSlot {
            consistent_point: field(1)
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| unexpected("slot without consistent point"))?,
            snapshot_name: field(2).ok_or_else(|| unexpected("slot without snapshot"))?,
        })
    }

    /// Starts streaming; the connection then speaks CopyBoth until [`WalSender::finish`].
    pub async fn start_replication(&mut self, command: &str) -> Result<(), CaptureError> {
        frontend::query(command, &mut self.write_buf).map_err(self.io_error())?;
        self.flush().await?;
        loop {
            if self.take_copy_both_response()? {
                return Ok(());
            }
            if let Some(message) = Message::parse(&mut self.read_buf).map_err(self.io_error())? {
                match message {
                    Message::ErrorResponse(body) => {
                        let error = ServerError::from_fields(body.fields());
                        return Err(CaptureError::server("starting replication".into(), error));
                    }
                    Message::NoticeResponse(_) | Message::ParameterStatus(_) => continue,
                    _ => return Err(unexpected("answer to START_REPLICATION")),
                }
            }
            self.fill().await?;
        }
    }

    /// The next CopyData payload while streaming; `None` when the server ended the stream.
    /// Cancel-safe: bytes already read stay buffered.
    pub async fn next_copy_data(&mut self) -> Result<Option<Bytes>, CaptureError> {
        loop {
            if let Some(message) = Message::parse(&mut self.read_buf).map_err(self.io_error())? {
                match message {
                    Message::CopyData(body) => return Ok(Some(body.into_bytes())),
                    Message::CopyDone | Message::CommandComplete(_) => return Ok(None),
                    Message::ErrorResponse(body) => {
                        let error = ServerError::from_fields(body.fields());
                        return Err(CaptureError::server("streaming changes".into(), error));
                    }
                    Message::NoticeResponse(_) | Message::ParameterStatus(_) => continue,
                    _ => return Err(unexpected("message while streaming")),
                }
            }
            self.fill().await?;
        }
    }

    /// Sends one CopyData payload (a standby status update).
    pub async fn send_copy_data(&mut self, payload: Bytes) -> Result<(), CaptureError> {
        frontend::CopyData::new(payload)
            .map_err(self.io_error())?
            .write(&mut self.write_buf);
        self.flush().await
    }

    /// Ends streaming politely (CopyDone), reads the server's answer and closes the connection.
    /// Data the server still sends is dropped: it is past the confirmed position and comes again.
    pub async fn end_stream(&mut self) -> Result<(), CaptureError> {
        frontend::copy_done(&mut self.write_buf);
        self.flush().await?;
        let drain = async {
            loop {
                match self.read_message().await? {
                    Message::ReadyForQuery(_) => return Ok::<_, CaptureError>(()),
                    Message::ErrorResponse(body) => {
                        let error = ServerError::from_fields(body.fields());
                        return Err(CaptureError::server("ending replication".into(), error));
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .unwrap_or(Ok(()))?;
        frontend::terminate(&mut self.write_buf);
        let _ = self.flush().await;
        Ok(())
    }

    fn take_copy_both_response(&mut self) -> Result<bool, CaptureError> {
        // postgres-protocol does not know CopyBothResponse ('W'); frame it here.
        if self.read_buf.first() != Some(&b'W') || self.read_buf.len() < 5 {
            return Ok(false);
        }
        let length = u32::from_be_bytes([
            self.read_buf[1],
            self.read_buf[2],
            self.read_buf[3],
            self.read_buf[4],
        ]) as usize;
        if self.read_buf.len() < length + 1 {
            return Ok(false);
        }
        let _ = self.read_buf.split_to(length + 1);
        Ok(true)
    }

    async fn read_message(&mut self) -> Result<Message, CaptureError> {
        loop {
            if let Some(message) = Message::parse(&mut self.read_buf).map_err(self.io_error())? {
                return Ok(message);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), CaptureError> {
        self.read_buf.reserve(64 * 1024);
        let read = self
            .io
            .read_buf(&mut self.read_buf)
            .await
            .map_err(self.io_error())?;
        if read == 0 {
            return Err(CaptureError::ConnectionLost {
                endpoint: self.endpoint.clone(),
                cause: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), CaptureError> {
        let data = self.write_buf.split();
        self.io.write_all(&data).await.map_err(self.io_error())?;
        self.io.flush().await.map_err(self.io_error())
    }

    fn io_error(&self) -> impl Fn(std::io::Error) -> CaptureError + use<> {
        let endpoint = self.endpoint.clone();
        move |cause| CaptureError::ConnectionLost {
            endpoint: endpoint.clone(),
            cause,
        }
    }
}

fn unexpected(what: &str) -> CaptureError {
    CaptureError::Protocol {
        what: format!("unexpected {what} from the server"),
    }
}

fn fallible_next<I: fallible_iterator::FallibleIterator>(
    iterator: &mut I,
) -> Result<Option<I::Item>, I::Error> {
    iterator.next()
}

async fn open_transport(
    spec: &ConnectionSpec,
    endpoint: &Endpoint,
    tls: Option<Arc<ClientConfig>>,
) -> Result<Box<dyn Transport>, CaptureError> {
    let name = endpoint.to_string();
    let connect_error = |error: std::io::Error| CaptureError::Connect {
        endpoint: name.clone(),
        reason: error.to_string(),
    };
    let host = match &endpoint.host {
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", endpoint.port));
            let stream = UnixStream::connect(&path).await.map_err(connect_error)?;
            return Ok(Box::new(stream));
        }
        Host::Tcp(host) => host,
    };
    let mut stream = TcpStream::connect((host.as_str(), endpoint.port))
        .await
        .map_err(connect_error)?;
    stream.set_nodelay(true).map_err(connect_error)?;
    let Some(tls) = tls else {
        return Ok(Box::new(stream));
    };
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    stream.write_all(&request).await.map_err(connect_error)?;
    let mut answer = [0u8; 1];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(connect_error)?;
    match answer[0] {
        b'S' => {
            let server_name = tls::server_name(host).map_err(|error| CaptureError::Tls {
                endpoint: name.clone(),
                reason: error.to_string(),
            })?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(server_name, stream)
                .await
                .map_err(|error| CaptureError::Tls {
                    endpoint: name.clone(),
                    reason: error.to_string(),
                })?;
            Ok(Box::new(stream))
        }
        b'N' if spec.tls.mode == SslMode::Prefer => Ok(Box::new(stream)),
        b'N' => Err(CaptureError::Tls {
            endpoint: name,
            reason: format!(
                "the server does not accept TLS but sslmode={}; enable ssl on the server or use sslmode=prefer",
                spec.tls.mode.as_str()
            ),
        }),
        other => Err(CaptureError::Protocol {
            what: format!("unexpected answer {other:#x} to the TLS request"),
        }),
    }
}
