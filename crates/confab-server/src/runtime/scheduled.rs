//! A schedule's due time worked through its audience: a page of contacts
//! per transaction, each page's runs, sends and log with the cursor that
//! records it (see `confab_store::triggers`).

use confab_flow::{Effect, Input, Run, step};
use confab_model::Channel;
use confab_store::{ClaimedJob, NewFiring, Write};

use super::{Route, Runtime, RuntimeError, Target, contact_json};
use crate::automation::{Active, How};
use crate::http::api::contacts::WINDOW_MS;

/// Contacts started in one transaction: short enough that the webhooks
/// waiting for the database meanwhile hardly notice.
const PAGE: usize = 5;

/// When the page after one worked at `now` is due: the audience is started
/// no faster than its channel sends (each start is mostly one message), so
/// a schedule for many contacts neither floods the outbox nor holds the
/// database in one long burst while webhooks wait.
fn next_page(now: i64, started: usize, per_second: f64) -> i64 {
    if started == 0 || !per_second.is_finite() || per_second <= 0.0 {
        return now;
    }
    now + (started as f64 * 1000.0 / per_second).ceil() as i64
}

impl Runtime {
    /// Works one page of the schedule firing `job` names; the job as this
    /// server holds it for the next page, if there is one. Another server
    /// that took the job over (its lease ran out) makes this page's work
    /// roll back: each contact is started once.
    pub async fn schedule_page(&self, job: &ClaimedJob) -> Result<Option<Held>, RuntimeError> {
        let now = self.clock.now_ms();
        let lease = (job.job_id, job.lease);
        let ended = || async {
            let mut tx = self.store.begin().await?;
            tx.finish_jobs(&[lease]).await?;
            tx.commit().await?;
            Ok::<_, RuntimeError>(None)
        };
        // Everything that needs no lock is read before the page's
        // transaction, which holds the writer (SQLite) and its contacts.
        let Some((firing, trigger)) = self.store.schedule_firing(job.ref_id).await? else {
            return ended().await;
        };
        let log = |contact: Option<i64>, run: Option<i64>, error: Option<String>, matched: &str| {
            Write::Fired(NewFiring {
                trigger_id: firing.trigger_id,
                bot_id: firing.bot_id,
                contact_id: contact,
                matched: matched.to_string(),
                run_id: run,
                error,
            })
        };
        let active = match trigger.as_ref().map(Active::of) {
            Some(Ok(a)) => a,
            // The trigger is gone, or no longer reads: nothing to do.
            Some(Err(e)) => {
                tracing::warn!(trigger = firing.trigger_id, error = %e, "a schedule cannot fire");
                return ended().await;
            }
            None => return ended().await,
        };
        let How::Schedule {
            schedule, audience, ..
        } = &active.how
        else {
            return ended().await;
        };
        let matched = format!("due {}", schedule.local(firing.due_ms));
        let mut catalog = self.registry.catalog(firing.bot_id);
        if !catalog.flows.contains_key(&active.flow) {
            // This server may not have seen the flow yet (made elsewhere
            // within the last second): read the flows again first.
            self.registry
                .rebuild(now)
                .await
                .map_err(|e| RuntimeError::Flow(e.to_string()))?;
            catalog = self.registry.catalog(firing.bot_id);
        }
        let channel = self.sending_channel(firing.bot_id);
        let problem = match channel {
            _ if !catalog.flows.contains_key(&active.flow) => {
                Some(format!("the bot has no flow {:?}", active.flow))
            }
            None => Some("the bot has no channel that can send".to_string()),
            Some(_) => None,
        };
        // This page: listed phones by position, or contacts by id.
        let (ids, cursor, done): (Vec<i64>, i64, bool) = match (&problem, &audience.contacts) {
            (Some(_), _) => (Vec::new(), firing.cursor, true),
            (None, Some(list)) => {
                let start = usize::try_from(firing.cursor).unwrap_or(0).min(list.len());
                let end = (start + PAGE).min(list.len());
                let phones: Vec<String> = list[start..end]
                    .iter()
                    .filter_map(|p| confab_model::PhoneNumber::parse(p).ok())
                    .map(|p| p.as_str().to_string())
                    .collect();
                let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
                let ids = self.store.audience_of(firing.bot_id, &refs, now).await?;
                (ids, end as i64, end >= list.len())
            }
            (None, None) => {
                let ids = self
                    .store
                    .audience_page(
                        firing.bot_id,
                        audience.tag.as_deref(),
                        firing.cursor,
                        PAGE as i64,
                    )
                    .await?;
                let (cursor, done) = (
                    ids.last().copied().unwrap_or(firing.cursor),
                    ids.len() < PAGE,
                );
                (ids, cursor, done)
            }
        };
        let Some((mut tx, page)) = self.store.begin_page(lease, &ids).await? else {
            // Another server has the job now.
            return Ok(None);
        };
        // How long the page holds the database (the writer, on SQLite).
        let began = std::time::Instant::now();
        let mut writes = Vec::new();
        let (mut started, mut skipped, mut queued) = (0usize, 0, false);
        if let Some(problem) = problem {
            writes.push(log(None, None, Some(problem), &matched));
        }
        let channel = channel.unwrap_or(Channel::Simulator);
        let sender = self.sender(firing.bot_id, channel, None);
        let route = Route::Outbox {
            channel,
            sender,
            reply_to: None,
        };
        let input = if active.variables.is_empty() {
            Input::Start
        } else {
            Input::StartWith(active.variables.clone())
        };
        let mut current = page.runs;
        for c in page.contacts {
            let skip = if c.state.blocked {
                Some("the contact is blocked")
            } else if c.state.opted_out {
                Some("the contact has opted out")
            } else {
                None
            };
            let contact = contact_json(c.id, &c.state, channel, None);
            let window_open = c.last_inbound_ms.is_some_and(|t| now - t < WINDOW_MS);
            let skip = skip.or_else(|| {
                (!window_open
                    && !opens_with_templates(&catalog, &active.flow, &contact, &input, now))
                .then_some(
                    "outside the 24-hour window, and the flow's first message is not a template",
                )
            });
            if let Some(why) = skip {
                skipped += 1;
                writes.push(log(Some(c.id), None, Some(why.into()), &matched));
                continue;
            }
            let moved = self
                .advance(
                    &mut tx,
                    &mut writes,
                    c.id,
                    contact,
                    None,
                    Target::Fresh {
                        flow: active.flow.clone(),
                        replacing: current.remove(&c.id),
                        why: "a schedule started another flow",
                    },
                    input.clone(),
                    &route,
                    now,
                )
                .await;
            match moved {
                Ok(advanced) => {
                    started += 1;
                    queued |= advanced.queued;
                    writes.push(log(Some(c.id), Some(advanced.first), None, &matched));
                }
                Err(RuntimeError::Flow(e)) => {
                    skipped += 1;
                    writes.push(log(Some(c.id), None, Some(e), &matched));
                }
                Err(e) => return Err(e),
            }
        }
        let next = next_page(now, started, self.settings.send_rate(channel));
        let held_until = next + self.settings.outbox_lease.as_millis() as i64;
        tx.schedule_page(
            firing.id,
            (cursor, started as i64, skipped),
            done,
            job.job_id,
            (now, next, held_until),
        );
        tx.commit_writes(writes, now).await?;
        tracing::debug!(
            firing = firing.id,
            started,
            skipped,
            elapsed_us = began.elapsed().as_micros() as u64,
            "schedule page"
        );
        if queued {
            self.wake.notify_one();
        }
        Ok((!done).then(|| Held {
            due_ms: next,
            job: ClaimedJob {
                lease: held_until,
                ..job.clone()
            },
        }))
    }
}

/// A schedule's job this server keeps leased between its pages: its next
/// page is worked at `due_ms` without claiming it again, one write fewer
/// per page. A server that stops gives it up; one that dies loses it when
/// the lease runs out.
#[derive(Clone, Debug)]
pub struct Held {
    pub due_ms: i64,
    pub job: ClaimedJob,
}

/// Whether every message `flow` sends first (before it waits) is a
/// template: all that may reach a contact whose service window is closed.
fn opens_with_templates(
    catalog: &crate::catalog::Catalog,
    flow: &str,
    contact: &serde_json::Value,
    input: &Input,
    now: i64,
) -> bool {
    let outcome = step(catalog, Run::new(flow, contact.clone()), input.clone(), now);
    outcome.effects.iter().all(|e| match e {
        Effect::Send { content } => content.is_template(),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::next_page;

    #[test]
    fn pages_come_at_the_pace_the_channel_sends() {
        assert_eq!(next_page(1_000, 5, 20.0), 1_250);
        assert_eq!(next_page(1_000, 5, 80.0), 1_063);
        assert_eq!(next_page(1_000, 3, 80.0), 1_038);
        // Nobody started (all skipped), or no pace: the next page at once.
        assert_eq!(next_page(1_000, 0, 20.0), 1_000);
        assert_eq!(next_page(1_000, 5, 0.0), 1_000);
    }
}
