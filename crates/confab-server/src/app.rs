//! Building the server from settings, and running it until shutdown.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use confab_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::auth::{Jwt, LoginGuard, random_secret};
use crate::catalog::Registry;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::ingest::Ingest;
use crate::runtime::Runtime;
use crate::worker::Worker;

/// What every request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub jwt: Arc<Jwt>,
    pub login_guard: Arc<LoginGuard>,
    pub ingest: Ingest,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    /// Wakes the outbox worker when new sends are queued.
    pub wake: Arc<Notify>,
    pub registry: Arc<Registry>,
    /// The bots, cached for routing webhooks.
    pub bots: Arc<crate::bots::Directory>,
    pub runtime: Arc<Runtime>,
    /// Set when a shutdown begins: `/ready` answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// Changed conversations, for open consoles.
    pub live: Arc<crate::live::Live>,
}

impl AppState {
    /// Reads the bots and their flows again after a change made here
    /// (other servers see it within a second: `keep_fresh`).
    pub async fn reload_bots(&self) -> anyhow::Result<()> {
        self.bots.reload().await?;
        self.rebuild_flows().await
    }

    /// Builds the bots' flows again after a change made here.
    pub async fn rebuild_flows(&self) -> anyhow::Result<()> {
        for p in self.registry.rebuild(self.clock.now_ms()).await? {
            tracing::warn!("flows: {p}");
        }
        self.runtime.triggers.reload(&self.store).await
    }

    /// Keeps the bots and their flows as fresh as the database until
    /// `stop` turns true: a change made on another server shows here within
    /// a second.
    pub async fn keep_fresh(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
            let fresh = match self.bots.refresh().await {
                Ok(false) => Ok(()),
                Ok(true) => self.rebuild_flows().await,
                Err(e) => Err(e),
            };
            if let Err(e) = fresh {
                tracing::warn!(error = %e, "reading the bots again failed");
            }
        }
    }
}

/// A built server: state, router and worker, not yet listening.
pub struct App {
    pub state: AppState,
    worker: Worker,
}

impl App {
    /// Opens and migrates the database and prepares everything `serve` runs.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let store = Store::connect(&settings.database_url)
            .await
            .with_context(|| {
                format!(
                    "DATABASE_URL: cannot open {}",
                    crate::config::redact_url(&settings.database_url)
                )
            })?;
        store
            .migrate()
            .await
            .context("applying database migrations")?;
        // Before the first webhook: in it, this stalled every request
        // behind it for about 100 ms.
        tokio::task::spawn_blocking(confab_model::PhoneNumber::warm)
            .await
            .context("loading the phone numbering plans")?;
        // Without a configured secret, replicas share one generated and kept
        // in the database, so tokens survive restarts and work on every replica.
        let secret = match &settings.jwt_secret {
            Some(s) => s.clone(),
            None => {
                store
                    .get_or_init_setting("jwt_secret", &random_secret())
                    .await?
            }
        };
        let jwt = Arc::new(Jwt::new(&secret, settings.jwt_ttl));
        let (registry, report) =
            Registry::load(store.clone(), Some(&settings.flows_dir), clock.now_ms()).await?;
        for p in &report.problems {
            tracing::warn!("flows: {p}");
        }
        tracing::info!(flows = ?report.flows, "flows loaded");
        if let Some(flow) = &settings.default_flow
            && !registry
                .catalog(confab_store::DEFAULT_BOT)
                .flows
                .contains_key(flow)
        {
            anyhow::bail!(
                "DEFAULT_FLOW: no flow {flow:?} is loaded (loaded: {}; none: no default flow)",
                report.flows.join(", ")
            );
        }
        let registry = Arc::new(registry);
        let settings = Arc::new(settings);
        store
            .sync_default_bot(
                settings.default_flow.as_deref(),
                settings
                    .assistant
                    .rate_limit
                    .map(|l| serde_json::json!(crate::access::StoredRateLimit::from(l))),
                clock.now_ms(),
            )
            .await?;
        let bots = crate::bots::Directory::load(store.clone(), settings.clone()).await?;
        let worker = Worker::new(store.clone(), bots.clone(), settings.clone(), clock.clone());
        if let Some(list) = &settings.assistant.allow_list {
            // WHITELISTED_USERS replaces the stored list; the API changes it later.
            store
                .put_setting(
                    crate::access::ALLOW_LIST_KEY,
                    &crate::access::allow_list_text(Some(list)),
                )
                .await?;
        }
        let runtime = Arc::new(Runtime::new(
            store.clone(),
            registry.clone(),
            bots.clone(),
            settings.clone(),
            clock.clone(),
            worker.waker(),
        ));
        runtime.triggers.reload(&store).await?;
        let ingest = Ingest::start(runtime.clone());
        let state = AppState {
            store,
            settings,
            clock,
            jwt,
            login_guard: Arc::new(LoginGuard::default()),
            ingest,
            metrics: crate::metrics_setup::handle(),
            started: Instant::now(),
            wake: worker.waker(),
            registry,
            bots,
            runtime: runtime.clone(),
            draining: Arc::new(AtomicBool::new(false)),
            live: Default::default(),
        };
        Ok(App { state, worker })
    }

    pub fn router(&self) -> axum::Router {
        crate::http::router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` turns true, then drains
    /// requests in flight, stops the worker and closes the database.
    pub async fn serve(
        self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let router = self.router();
        let (stop_worker, worker_stopped) = watch::channel(false);
        let timers = tokio::spawn(crate::worker::run_jobs(
            self.state.runtime.clone(),
            worker_stopped.clone(),
        ));
        let schedules = tokio::spawn(crate::worker::run_schedules(
            self.state.runtime.clone(),
            worker_stopped.clone(),
        ));
        let fresh_bots = tokio::spawn(self.state.clone().keep_fresh(worker_stopped.clone()));
        // Ends with the shutdown's start, so open consoles do not hold up the drain.
        let live = tokio::spawn(
            self.state
                .live
                .clone()
                .run(self.state.store.clone(), shutdown.clone()),
        );
        let worker = tokio::spawn(self.worker.run(worker_stopped));
        let upkeep = {
            let handle = self.state.metrics.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    handle.run_upkeep();
                }
            })
        };
        let http = &self.state.settings.http;
        let limits = crate::http::serve::Limits {
            header_timeout: http.header_timeout,
            idle_timeout: http.idle_timeout,
            max_connections: http
                .max_connections
                .unwrap_or_else(crate::http::serve::default_max_connections),
            shutdown_timeout: http.shutdown_timeout,
        };
        tracing::info!(
            max_connections = limits.max_connections,
            reserved_for_health = crate::http::serve::RESERVE,
            "accepting connections"
        );
        crate::http::serve::serve(
            listener,
            router,
            limits,
            self.state.draining.clone(),
            shutdown.clone(),
        )
        .await;
        let _ = shutdown.wait_for(|stop| *stop).await;
        let _ = stop_worker.send(true);
        let _ = worker.await;
        let _ = timers.await;
        let _ = schedules.await;
        let _ = fresh_bots.await;
        let _ = live.await;
        upkeep.abort();
        self.state.store.close().await;
        Ok(())
    }
}
