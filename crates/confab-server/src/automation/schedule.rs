//! When a schedule trigger is due: once, daily, weekly, monthly or by a
//! cron expression, in an IANA time zone.
//!
//! Times are wall-clock times of the zone. Across daylight-saving changes
//! a fixed time fires once a day: a time the clocks skip fires at the first
//! instant after the gap, a time they repeat fires at the first of its two
//! instants. Interval cron patterns (`*/15 * * * *`) follow real time.
//! The arithmetic is croner's, over chrono-tz's zone data built into the
//! binary (nothing is read from the machine's zoneinfo).

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// How often a schedule fires, as stored and as the API takes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Every {
    /// One instant: `schedule_at`, a local date and time (`2026-12-24T09:00`).
    Once { schedule_at: String },
    /// Every day at `schedule_time` (`09:00`).
    Daily { schedule_time: String },
    /// On `schedule_days` (`["mon", "thu"]`) at `schedule_time`.
    Weekly {
        schedule_days: Vec<String>,
        schedule_time: String,
    },
    /// On day `schedule_day` (1-31) of each month at `schedule_time`; in a
    /// month with fewer days, on its last day.
    Monthly {
        schedule_day: u32,
        schedule_time: String,
    },
    /// A cron expression of 5 fields (minute hour day month weekday).
    Cron { cron: String },
}

/// A schedule that was checked: it parses and its zone exists.
#[derive(Clone, Debug)]
pub struct Schedule {
    tz: Tz,
    when: When,
}

#[derive(Clone, Debug)]
enum When {
    Once(NaiveDateTime),
    /// The earliest next occurrence of any of these patterns.
    Crons(Vec<Cron>),
}

/// Why a schedule cannot be used: the field and what is wrong with it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field,
        message: message.into(),
    }
}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn time_of(s: &str) -> Result<NaiveTime, ScheduleError> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| invalid("schedule_time", format!("{s:?} is not a time like 09:00")))
}

fn cron(pattern: &str, field: &'static str) -> Result<Cron, ScheduleError> {
    if pattern.split_whitespace().count() != 5 {
        return Err(invalid(
            field,
            format!("{pattern:?} must have 5 fields: minute hour day-of-month month day-of-week"),
        ));
    }
    Cron::from_str(pattern).map_err(|e| invalid(field, format!("{pattern:?}: {e}")))
}

impl Schedule {
    pub fn parse(every: &Every, timezone: &str) -> Result<Schedule, ScheduleError> {
        let tz = Tz::from_str(timezone.trim()).map_err(|_| {
            invalid(
                "schedule_timezone",
                format!("{timezone:?} is not an IANA time zone (like Europe/Berlin or UTC)"),
            )
        })?;
        let when = match every {
            Every::Once { schedule_at } => {
                let at = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
                    .iter()
                    .find_map(|f| NaiveDateTime::parse_from_str(schedule_at.trim(), f).ok())
                    .ok_or_else(|| {
                        invalid(
                            "schedule_at",
                            format!(
                                "{schedule_at:?} is not a local date and time like 2026-12-24T09:00"
                            ),
                        )
                    })?;
                When::Once(at)
            }
            Every::Daily { schedule_time } => {
                let t = time_of(schedule_time)?;
                When::Crons(vec![cron(
                    &format!("{} {} * * *", t.format("%M"), t.format("%H")),
                    "schedule_time",
                )?])
            }
            Every::Weekly {
                schedule_days,
                schedule_time,
            } => {
                let t = time_of(schedule_time)?;
                let mut days = Vec::new();
                for d in schedule_days {
                    let key = d.trim().to_lowercase();
                    let n = DAYS
                        .iter()
                        .position(|x| key.starts_with(x))
                        .ok_or_else(|| {
                            invalid(
                                "schedule_days",
                                format!("{d:?} is not a weekday (mon, tue, ... sun)"),
                            )
                        })?;
                    if !days.contains(&n) {
                        days.push(n);
                    }
                }
                if days.is_empty() {
                    return Err(invalid("schedule_days", "name at least one weekday"));
                }
                days.sort_unstable();
                let list: Vec<String> = days.iter().map(usize::to_string).collect();
                When::Crons(vec![cron(
                    &format!(
                        "{} {} * * {}",
                        t.format("%M"),
                        t.format("%H"),
                        list.join(",")
                    ),
                    "schedule_days",
                )?])
            }
            Every::Monthly {
                schedule_day,
                schedule_time,
            } => {
                let t = time_of(schedule_time)?;
                let (m, h) = (t.format("%M"), t.format("%H"));
                let patterns = match *schedule_day {
                    d @ 1..=28 => vec![format!("{m} {h} {d} * *")],
                    // The months that have the day, and February's last.
                    d @ (29 | 30) => {
                        vec![format!("{m} {h} {d} 1,3-12 *"), format!("{m} {h} L 2 *")]
                    }
                    31 => vec![format!("{m} {h} L * *")],
                    d => {
                        return Err(invalid(
                            "schedule_day",
                            format!("{d} is not a day of the month (1-31)"),
                        ));
                    }
                };
                When::Crons(
                    patterns
                        .iter()
                        .map(|p| cron(p, "schedule_day"))
                        .collect::<Result<_, _>>()?,
                )
            }
            Every::Cron { cron: pattern } => When::Crons(vec![cron(pattern, "cron")?]),
        };
        Ok(Schedule { tz, when })
    }

    /// The first due time strictly after `after_ms`, or none (a `once`
    /// schedule that has passed).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = DateTime::<Utc>::from_timestamp_millis(after_ms)?.with_timezone(&self.tz);
        match &self.when {
            When::Once(at) => {
                let due = resolve(&self.tz, *at)?;
                (due > after_ms).then_some(due)
            }
            When::Crons(crons) => crons
                .iter()
                .filter_map(|c| c.find_next_occurrence(&after, false).ok())
                .map(|t| t.timestamp_millis())
                .min(),
        }
    }

    /// The next `n` due times after `after_ms`.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut at = after_ms;
        while out.len() < n {
            match self.next_after(at) {
                Some(t) => {
                    out.push(t);
                    at = t;
                }
                None => break,
            }
        }
        out
    }

    /// `ms` as a local date and time of the schedule's zone, with its offset.
    pub fn local(&self, ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .map(|t| t.with_timezone(&self.tz).to_rfc3339())
            .unwrap_or_default()
    }
}

/// A local date and time of `tz` as an instant: the earlier of a repeated
/// time; for a skipped one, the first whole minute after the gap, which is
/// where every zone's transitions fall.
fn resolve(tz: &Tz, at: NaiveDateTime) -> Option<i64> {
    let mut probe = at;
    // Gaps are at most a few hours; a day bounds the search.
    for _ in 0..=24 * 60 {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return Some(t.timestamp_millis()),
            LocalResult::Ambiguous(early, _) => return Some(early.timestamp_millis()),
            LocalResult::None => probe += chrono::Duration::minutes(1),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn iso(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    fn daily(time: &str, tz: &str) -> Schedule {
        Schedule::parse(
            &Every::Daily {
                schedule_time: time.into(),
            },
            tz,
        )
        .unwrap()
    }

    fn next(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        s.upcoming(at(from), n).into_iter().map(iso).collect()
    }

    #[test]
    fn a_daily_time_the_clocks_skip_fires_once_at_the_first_instant_after_the_gap() {
        // New York skips 02:00-03:00 on 2026-03-08; Berlin 02:00-03:00 on 2026-03-29.
        let ny = daily("02:30", "America/New_York");
        assert_eq!(
            next(&ny, "2026-03-06T12:00:00Z", 4),
            [
                "2026-03-07T07:30:00Z", // 02:30 EST
                "2026-03-08T07:00:00Z", // 03:00 EDT: the gap's end
                "2026-03-09T06:30:00Z", // 02:30 EDT
                "2026-03-10T06:30:00Z",
            ]
        );
        let berlin = daily("02:30", "Europe/Berlin");
        assert_eq!(
            next(&berlin, "2026-03-27T12:00:00Z", 4),
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST
                "2026-03-30T00:30:00Z", // 02:30 CEST
                "2026-03-31T00:30:00Z",
            ]
        );
    }

    #[test]
    fn a_daily_time_the_clocks_repeat_fires_once_at_its_first_instant() {
        // New York repeats 01:00-02:00 on 2026-11-01; Berlin 02:00-03:00 on 2026-10-25.
        let ny = daily("01:30", "America/New_York");
        assert_eq!(
            next(&ny, "2026-10-31T12:00:00Z", 3),
            [
                "2026-11-01T05:30:00Z", // 01:30 EDT; not again at 01:30 EST
                "2026-11-02T06:30:00Z",
                "2026-11-03T06:30:00Z",
            ]
        );
        let berlin = daily("02:30", "Europe/Berlin");
        assert_eq!(
            next(&berlin, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        // A server that looks again during the repeated hour does not fire twice.
        assert_eq!(
            iso(ny.next_after(at("2026-11-01T06:10:00Z")).unwrap()),
            "2026-11-02T06:30:00Z"
        );
    }

    #[test]
    fn weekly_and_monthly_fire_on_their_days_and_the_31st_on_a_short_months_last_day() {
        let weekly = Schedule::parse(
            &Every::Weekly {
                schedule_days: vec!["Mon".into(), "thursday".into()],
                schedule_time: "09:00".into(),
            },
            "Europe/Berlin",
        )
        .unwrap();
        // 2026-12-03 is a Thursday.
        assert_eq!(
            next(&weekly, "2026-12-03T09:00:00Z", 3),
            [
                "2026-12-07T08:00:00Z",
                "2026-12-10T08:00:00Z",
                "2026-12-14T08:00:00Z"
            ]
        );
        let monthly = |day| {
            Schedule::parse(
                &Every::Monthly {
                    schedule_day: day,
                    schedule_time: "08:00".into(),
                },
                "UTC",
            )
            .unwrap()
        };
        assert_eq!(
            next(&monthly(31), "2027-01-01T00:00:00Z", 4),
            [
                "2027-01-31T08:00:00Z",
                "2027-02-28T08:00:00Z",
                "2027-03-31T08:00:00Z",
                "2027-04-30T08:00:00Z"
            ]
        );
        assert_eq!(
            next(&monthly(30), "2028-01-15T00:00:00Z", 3),
            [
                "2028-01-30T08:00:00Z",
                "2028-02-29T08:00:00Z",
                "2028-03-30T08:00:00Z"
            ]
        );
        assert_eq!(
            next(&monthly(15), "2027-01-15T08:00:00Z", 1),
            ["2027-02-15T08:00:00Z"]
        );
    }

    #[test]
    fn cron_and_once_in_a_zone() {
        let c = Schedule::parse(
            &Every::Cron {
                cron: "0 9 * * MON-FRI".into(),
            },
            "America/New_York",
        )
        .unwrap();
        // Friday 2026-12-04, then Monday.
        assert_eq!(
            next(&c, "2026-12-04T12:00:00Z", 2),
            ["2026-12-04T14:00:00Z", "2026-12-07T14:00:00Z"]
        );
        let once = Schedule::parse(
            &Every::Once {
                schedule_at: "2026-12-24T09:00".into(),
            },
            "Asia/Tokyo",
        )
        .unwrap();
        assert_eq!(
            next(&once, "2026-12-01T00:00:00Z", 3),
            ["2026-12-24T00:00:00Z"]
        );
        assert_eq!(once.next_after(at("2026-12-24T00:00:00Z")), None);
        // A once in a gap: the gap's end.
        let skipped = Schedule::parse(
            &Every::Once {
                schedule_at: "2026-03-29T02:30".into(),
            },
            "Europe/Berlin",
        )
        .unwrap();
        assert_eq!(
            next(&skipped, "2026-03-01T00:00:00Z", 1),
            ["2026-03-29T01:00:00Z"]
        );
    }

    #[test]
    fn bad_schedules_name_their_field() {
        let field = |every: Every, tz: &str| Schedule::parse(&every, tz).unwrap_err().field;
        let daily = |t: &str| Every::Daily {
            schedule_time: t.into(),
        };
        assert_eq!(field(daily("09:00"), "Mars/Olympus"), "schedule_timezone");
        assert_eq!(field(daily("25:00"), "UTC"), "schedule_time");
        assert_eq!(field(daily("9am"), "UTC"), "schedule_time");
        assert_eq!(
            field(
                Every::Cron {
                    cron: "61 * * * *".into()
                },
                "UTC"
            ),
            "cron"
        );
        assert_eq!(
            field(
                Every::Cron {
                    cron: "* * *".into()
                },
                "UTC"
            ),
            "cron"
        );
        assert_eq!(
            field(
                Every::Weekly {
                    schedule_days: vec!["someday".into()],
                    schedule_time: "09:00".into()
                },
                "UTC"
            ),
            "schedule_days"
        );
        assert_eq!(
            field(
                Every::Monthly {
                    schedule_day: 32,
                    schedule_time: "09:00".into()
                },
                "UTC"
            ),
            "schedule_day"
        );
        assert_eq!(
            field(
                Every::Once {
                    schedule_at: "tomorrow".into()
                },
                "UTC"
            ),
            "schedule_at"
        );
    }
}
