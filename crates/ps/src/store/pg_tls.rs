//! TLS to PostgreSQL, chosen in the database URL as libpq users write it (`docs/deployment.md`,
//! "TLS to the database"):
//!
//! - `sslmode=verify-full`, `verify-ca` or `require`: the connection is encrypted and the server's
//!   certificate is verified — chained to `sslrootcert` (a PEM file in the same URL) or, without
//!   it, to the system's roots, and issued for the URL's host. All three verify fully: a payment
//!   system does not send its books to a server it has not recognised (libpq's `require` would
//!   accept any certificate; here it is as strict as `verify-full`).
//! - `disable`, `prefer` (the default) or none: plain TCP, as before; for a Unix socket or a
//!   private network only.
//!
//! The adapter is ours, on tokio-rustls and aws-lc (the crypto the PS's listeners already use),
//! rather than `tokio-postgres-rustls`, which brings ring as a second crypto library. It offers no
//! channel binding, so SCRAM runs without `-PLUS`; the verified certificate is what binds the
//! server.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::TlsConnector;

use super::{StoreError, StoreResult};

/// A parsed database URL: what tokio-postgres takes, and the TLS to speak when it asks for it.
pub(crate) struct DatabaseUrl {
    pub config: tokio_postgres::Config,
    pub tls: Option<MakeTls>,
}

/// Parses a `postgres://` URL, taking out `sslrootcert` (tokio-postgres does not know it) and
/// reading `sslmode` as described above.
pub(crate) fn parse(url: &str) -> StoreResult<DatabaseUrl> {
    let invalid =
        |why: String| StoreError::Connect(format!("the database URL is not valid: {why}"));
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = form_urlencoded::Serializer::new(String::new());
    let mut mode = None;
    let mut root_file = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "sslrootcert" => root_file = Some(PathBuf::from(&*value)),
            "sslmode" => {
                let verify = match &*value {
                    "disable" | "prefer" => false,
                    "require" | "verify-ca" | "verify-full" => true,
                    other => {
                        return Err(invalid(format!(
                            "sslmode={other}: use disable, prefer, require, verify-ca or verify-full"
                        )));
                    }
                };
                mode = Some(verify);
                kept.append_pair("sslmode", if verify { "require" } else { &value });
            }
            _ => {
                kept.append_pair(&key, &value);
            }
        }
    }
    let kept = kept.finish();
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{kept}")
    };
    let config: tokio_postgres::Config = rebuilt.parse().map_err(|e| invalid(chain(&e)))?;
    let verify = mode.unwrap_or(false);
    if root_file.is_some() && !verify {
        return Err(invalid(
            "sslrootcert is given but sslmode does not ask for TLS: add sslmode=verify-full"
                .to_owned(),
        ));
    }
    let tls = if verify {
        Some(MakeTls::new(root_file)?)
    } else {
        None
    };
    Ok(DatabaseUrl { config, tls })
}

/// An error with its causes, which tokio-postgres's own message leaves out ("error performing
/// TLS handshake" says nothing of the certificate).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Makes a verified TLS session for each new connection.
#[derive(Clone)]
pub(crate) struct MakeTls {
    config: Arc<rustls::ClientConfig>,
}

impl MakeTls {
    fn new(root_file: Option<PathBuf>) -> StoreResult<MakeTls> {
        let roots = match &root_file {
            Some(path) => crate::outgoing::operator_roots(path).map_err(|e| {
                StoreError::Connect(format!(
                    "the database URL's sslrootcert {}: {}",
                    path.display(),
                    e.why()
                ))
            })?,
            None => crate::outgoing::system_roots(),
        };
        let mut store = rustls::RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(roots);
        if added == 0 {
            return Err(StoreError::Connect(
                "the database URL asks for TLS, and there is no CA to verify the server with: \
                 add sslrootcert=<the server's CA, PEM> to the URL"
                    .to_owned(),
            ));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Connect(format!("TLS to the database: {e}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(MakeTls {
            config: Arc::new(config),
        })
    }
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<Connect> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Connect {
            connector: TlsConnector::from(self.config.clone()),
            name,
        })
    }
}

/// One connection's handshake, for the server named `name`.
pub(crate) struct Connect {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(Stream(tls))
        })
    }
}

/// A TLS session to the server.
pub(crate) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_keeps_what_tokio_postgres_reads_and_asks_for_verified_tls_by_sslmode() {
        let plain = parse("postgres://u@db.example:5432/ps?application_name=tolem").expect("ok");
        assert!(plain.tls.is_none());
        assert_eq!(plain.config.get_application_name(), Some("tolem"));
        for mode in ["disable", "prefer"] {
            let url = format!("postgres://u@db.example/ps?sslmode={mode}");
            assert!(parse(&url).expect("ok").tls.is_none(), "{mode}");
        }
        for mode in ["require", "verify-ca", "verify-full"] {
            let url = format!("postgres://u@db.example/ps?sslmode={mode}");
            let parsed = parse(&url).expect("ok");
            assert!(parsed.tls.is_some(), "{mode}");
            assert_eq!(
                parsed.config.get_ssl_mode(),
                tokio_postgres::config::SslMode::Require
            );
        }
    }

    #[test]
    fn a_percent_encoded_password_reaches_the_server_decoded() {
        // docs/deployment.md: a password's reserved characters are written `%40`, `%26`, `%2F`.
        let url = "postgres://tolem:p%40ss%26word%2F%3F@db.example/ps?sslmode=disable";
        let parsed = parse(url).expect("ok");
        assert_eq!(parsed.config.get_user(), Some("tolem"));
        assert_eq!(parsed.config.get_password(), Some(&b"p@ss&word/?"[..]));
        assert_eq!(parsed.config.get_dbname(), Some("ps"));
    }

    #[test]
    fn a_wrong_mode_or_root_file_is_refused_naming_it() {
        let err = |url: &str| match parse(url) {
            Ok(_) => panic!("{url} was taken"),
            Err(e) => e.to_string(),
        };
        let e = err("postgres://u@h/ps?sslmode=allow");
        assert!(e.contains("sslmode=allow"), "{e}");
        let e = err("postgres://u@h/ps?sslrootcert=/etc/ca.pem");
        assert!(e.contains("sslmode=verify-full"), "{e}");
        let e = err("postgres://u@h/ps?sslmode=verify-full&sslrootcert=/nowhere/ca.pem");
        assert!(
            e.contains("/nowhere/ca.pem") && e.contains("cannot read"),
            "{e}"
        );
    }

    /// The test server's CA (scripts/test-postgres makes one and names it `ssl_ca_file`), or
    /// `None` with a line saying so when the server has no TLS.
    fn test_server_ca(admin: &str) -> Option<String> {
        let mut client = admin
            .parse::<postgres::Config>()
            .expect("an admin URL")
            .connect(postgres::NoTls)
            .expect("the admin connection");
        let show = |client: &mut postgres::Client, what: &str| -> String {
            client
                .query_one(&format!("SHOW {what}"), &[])
                .map(|row| row.get(0))
                .unwrap_or_default()
        };
        let (ssl, ca) = (show(&mut client, "ssl"), show(&mut client, "ssl_ca_file"));
        if ssl != "on" || ca.is_empty() {
            eprintln!("the test server has no TLS (start it with scripts/test-postgres); not run");
            return None;
        }
        Some(ca)
    }

    fn is_tls(conn: &super::super::db::PgConn) -> bool {
        super::super::db::Db::Pg(conn)
            .query_row(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
                |row| row.get::<bool>(0),
            )
            .expect("pg_stat_ssl")
            .unwrap_or(false)
    }

    #[test]
    fn the_store_speaks_verified_tls_when_the_url_asks_and_refuses_a_server_it_cannot_verify() {
        use super::super::db::PgConn;
        use super::super::migrations_pg::tests::{TestDatabase, admin_url};
        let Some(admin) = admin_url("pg_tls") else {
            return;
        };
        let Some(ca) = test_server_ca(&admin) else {
            return;
        };
        let db = TestDatabase::create(&admin, "tls");
        let verified = format!("{}?sslmode=verify-full&sslrootcert={ca}", db.url());
        let conn = PgConn::connect(&parse(&verified).expect("parsed")).expect("connected");
        assert!(is_tls(&conn), "the session is TLS");
        let plain = PgConn::connect(&parse(&db.url()).expect("parsed")).expect("connected");
        assert!(
            !is_tls(&plain),
            "without sslmode the session stays plain, as before"
        );

        // The whole store over it: migrations, a transaction, a read.
        let limits = crate::store::StoreLimits::of(&crate::config::Config::default().limits);
        let store = crate::store::Store::open(std::path::Path::new(&verified), &limits)
            .expect("the store opens over TLS");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime
            .block_on(store.load_catalog())
            .expect("the catalog reads");

        // The system's roots do not know the cluster's CA: refused, and the reason is named.
        let unverified = format!("{}?sslmode=require", db.url());
        let Err(e) = PgConn::connect(&parse(&unverified).expect("parsed")) else {
            panic!("a server whose certificate nobody vouches for was accepted");
        };
        let e = e.to_string();
        assert!(
            e.contains("cannot connect to the database") && e.contains("certificate"),
            "{e}"
        );
    }
}
