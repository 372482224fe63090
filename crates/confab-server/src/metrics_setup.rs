//! The Prometheus recorder. It is process-wide (the `metrics` macros write
//! to one global recorder), so every app in a process shares it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first, in which case
            // our handle renders nothing but the server still works.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
