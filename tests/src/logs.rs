//! The functions' JSON log lines, captured for a test to read.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Captures the JSON log lines the code under `future` writes.
pub async fn with_logs<F: std::future::Future>(future: F) -> (F::Output, Vec<Value>) {
    use tracing::instrument::WithSubscriber;
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let output = future.with_subscriber(subscriber).await;
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).expect("UTF-8 logs");
    let lines = text.lines().map(|l| serde_json::from_str(l).expect("each log line is JSON")).collect();
    (output, lines)
}
