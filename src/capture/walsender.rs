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

use super::conninfo::{
    ChannelBinding as ChannelBindingMode, ConnectionSpec, Endpoint, Host, Password, SslMode,
};
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
    /// The `tls-server-end-point` hash of the server's certificate, when the connection is TLS
    /// and the certificate's signature names a hash (RFC 5929).
    channel_binding: Option<Vec<u8>>,
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
        let (io, channel_binding) =
            tokio::time::timeout(spec.connect_timeout, open_transport(spec, endpoint, tls))
                .await
                .map_err(|_| CaptureError::Connect {
                    endpoint: name.clone(),
                    reason: format!("no answer within {} s", spec.connect_timeout.as_secs()),
                })??;
        let mut connection = Self {
            io,
            channel_binding,
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
        let required = spec.tls.channel_binding == ChannelBindingMode::Require;
        let mut bound = false;
        loop {
            match self.read_message().await? {
                Message::AuthenticationOk if required && !bound => {
                    return Err(self.unbound("the server let rowtrail in without SCRAM"));
                }
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword
                | Message::AuthenticationMd5Password(_)
                    if required =>
                {
                    return Err(self.unbound("the server asks for a password without SCRAM"));
                }
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
                    let mut offered = (false, false);
                    let mut mechanisms = body.mechanisms();
                    while let Some(mechanism) =
                        fallible_next(&mut mechanisms).map_err(self.io_error())?
                    {
                        offered.0 |= mechanism == sasl::SCRAM_SHA_256;
                        offered.1 |= mechanism == sasl::SCRAM_SHA_256_PLUS;
                    }
                    let (mechanism, binding) = choose_scram(
                        spec.tls.channel_binding,
                        self.channel_binding.as_deref(),
                        offered,
                    )
                    .map_err(|reason| self.unbound(reason))?;
                    bound = mechanism == sasl::SCRAM_SHA_256_PLUS;
                    let password = self.password(spec, endpoint)?;
                    let state = ScramSha256::new(password.expose().as_bytes(), binding);
                    frontend::sasl_initial_response(
                        mechanism,
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

    /// Authentication would go on without the channel binding `channel_binding=require` asks for.
    fn unbound(&self, reason: &str) -> CaptureError {
        CaptureError::Tls {
            endpoint: self.endpoint.clone(),
            reason: format!(
                "channel_binding=require, but {reason}: the server may not be who it claims; use TLS with scram-sha-256 (PostgreSQL 11+), or channel_binding=prefer"
            ),
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

    /// True when a whole message is already read and waiting (usually the next change, so the
    /// stream reads on before handing its batch to the writer).
    pub fn has_buffered_message(&self) -> bool {
        let buffered = &self.read_buf;
        buffered.len() >= 5
            && buffered.len()
                > u32::from_be_bytes([buffered[1], buffered[2], buffered[3], buffered[4]]) as usize
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

/// Picks the SCRAM mechanism and channel binding as libpq does: `SCRAM-SHA-256-PLUS` bound to the
/// server's certificate when the connection is TLS, the server offers it and binding is not
/// disabled; else plain `SCRAM-SHA-256`, telling the server whether the client could have bound
/// (so a man in the middle who stripped `-PLUS` from the offer is caught). `offered` is
/// (`SCRAM-SHA-256`, `SCRAM-SHA-256-PLUS`).
fn choose_scram(
    mode: ChannelBindingMode,
    end_point: Option<&[u8]>,
    offered: (bool, bool),
) -> Result<(&'static str, ChannelBinding), &'static str> {
    let plain = |binding| match offered.0 {
        true => Ok((sasl::SCRAM_SHA_256, binding)),
        false => Err("the server offers no SASL mechanism rowtrail supports"),
    };
    match (mode, end_point, offered.1) {
        (ChannelBindingMode::Disable, ..) => plain(ChannelBinding::unsupported()),
        (_, Some(hash), true) => Ok((
            sasl::SCRAM_SHA_256_PLUS,
            ChannelBinding::tls_server_end_point(hash.to_vec()),
        )),
        (ChannelBindingMode::Require, None, _) => {
            Err("the connection is not TLS, or the certificate names no hash to bind to")
        }
        (ChannelBindingMode::Require, Some(_), false) => {
            Err("the server does not offer SCRAM-SHA-256-PLUS")
        }
        (ChannelBindingMode::Prefer, Some(_), false) => plain(ChannelBinding::unrequested()),
        (ChannelBindingMode::Prefer, None, _) => plain(ChannelBinding::unsupported()),
    }
}

/// The `tls-server-end-point` channel binding data of a certificate (RFC 5929): its hash with the
/// hash function of its signature algorithm, SHA-256 for MD5 and SHA-1; `None` for signature
/// algorithms without one (Ed25519).
fn end_point_hash(certificate: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::Decode;
    use x509_cert::der::oid::db::rfc5912::{
        ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512, ID_SHA_1, ID_SHA_256,
        ID_SHA_384, ID_SHA_512, MD_5_WITH_RSA_ENCRYPTION, SHA_1_WITH_RSA_ENCRYPTION,
        SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
    };
    let parsed = x509_cert::Certificate::from_der(certificate).ok()?;
    let algorithm = match parsed.signature_algorithm.oid {
        ID_SHA_1
        | ID_SHA_256
        | MD_5_WITH_RSA_ENCRYPTION
        | SHA_1_WITH_RSA_ENCRYPTION
        | SHA_256_WITH_RSA_ENCRYPTION
        | ECDSA_WITH_SHA_256 => &ring::digest::SHA256,
        ID_SHA_384 | SHA_384_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_384 => &ring::digest::SHA384,
        ID_SHA_512 | SHA_512_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_512 => &ring::digest::SHA512,
        _ => return None,
    };
    Some(
        ring::digest::digest(algorithm, certificate)
            .as_ref()
            .to_vec(),
    )
}

/// A connected transport and, over TLS, the data to bind SCRAM to it.
type OpenTransport = (Box<dyn Transport>, Option<Vec<u8>>);

async fn open_transport(
    spec: &ConnectionSpec,
    endpoint: &Endpoint,
    tls: Option<Arc<ClientConfig>>,
) -> Result<OpenTransport, CaptureError> {
    let name = endpoint.to_string();
    let connect_error = |error: std::io::Error| CaptureError::Connect {
        endpoint: name.clone(),
        reason: error.to_string(),
    };
    let host = match &endpoint.host {
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", endpoint.port));
            let stream = UnixStream::connect(&path).await.map_err(connect_error)?;
            return Ok((Box::new(stream), None));
        }
        Host::Tcp(host) => host,
    };
    let mut stream = TcpStream::connect((host.as_str(), endpoint.port))
        .await
        .map_err(connect_error)?;
    stream.set_nodelay(true).map_err(connect_error)?;
    let Some(tls) = tls else {
        return Ok((Box::new(stream), None));
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
            let binding = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certificates| certificates.first())
                .and_then(|certificate| end_point_hash(certificate.as_ref()));
            Ok((Box::new(stream), binding))
        }
        b'N' if spec.tls.mode == SslMode::Prefer => Ok((Box::new(stream), None)),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn scram_binds_to_tls_as_libpq_does() {
        use ChannelBindingMode::{Disable, Prefer, Require};
        let hash: &[u8] = &[1, 2, 3];
        let mechanism =
            |mode, end_point, offered| choose_scram(mode, end_point, offered).map(|(name, _)| name);
        assert_eq!(
            mechanism(Prefer, Some(hash), (true, true)),
            Ok(sasl::SCRAM_SHA_256_PLUS)
        );
        assert_eq!(
            mechanism(Require, Some(hash), (true, true)),
            Ok(sasl::SCRAM_SHA_256_PLUS)
        );
        assert_eq!(
            mechanism(Disable, Some(hash), (true, true)),
            Ok(sasl::SCRAM_SHA_256)
        );
        assert_eq!(
            mechanism(Prefer, Some(hash), (true, false)),
            Ok(sasl::SCRAM_SHA_256)
        );
        assert_eq!(
            mechanism(Prefer, None, (true, true)),
            Ok(sasl::SCRAM_SHA_256)
        );
        assert!(mechanism(Require, None, (true, true)).is_err());
        assert!(mechanism(Require, Some(hash), (true, false)).is_err());
        assert!(mechanism(Prefer, None, (false, true)).is_err());
    }
}
