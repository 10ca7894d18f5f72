//! The log lines of a test binary, for the tests that check what the kit logs. One subscriber
//! for the whole binary: with a subscriber per test thread, a line first met by another test's
//! thread (with none) can be marked as wanted by no one and then never reach the test that
//! waits for it. Tests tell their lines apart by an id of their own (an X-Request-ID, a
//! notification id).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything logged at INFO and above in this binary, as text.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// The binary's log, its subscriber installed on first use.
    pub fn get() -> &'static Log {
        static LOG: OnceLock<Log> = OnceLock::new();
        LOG.get_or_init(|| {
            let log = Log::default();
            let sink = log.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || sink.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            log
        })
    }

    /// The lines that contain every one of `words`.
    pub fn lines(&self, words: &[&str]) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("lock"))
            .lines()
            .filter(|line| words.iter().all(|w| line.contains(w)))
            .map(str::to_owned)
            .collect()
    }
}
