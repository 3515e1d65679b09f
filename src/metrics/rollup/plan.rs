//! Where each part of a metrics window is read from: pure time arithmetic over the two rollup
//! grains (UTC days, then UTC hours) and the rollup state.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, DurationRound, NaiveDateTime, Utc};

use super::super::store::Dialect;

/// A rollup granularity, with the tables and the text key (`YYYY-MM-DD`, `YYYY-MM-DDTHH`) that
/// go with it. Keys sort as the times they name, so SQL compares them as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grain {
    Day,
    Hour,
}

impl Grain {
    pub(super) fn step(self) -> Duration {
        match self {
            Grain::Day => Duration::days(1),
            Grain::Hour => Duration::hours(1),
        }
    }

    /// The start of the bucket holding `t`.
    pub(super) fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        t.duration_trunc(self.step()).unwrap_or(t)
    }

    /// The start of the first whole bucket at or after `t`.
    fn ceil(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let floor = self.floor(t);
        if floor == t { t } else { floor + self.step() }
    }

    pub(super) fn key(self, start: DateTime<Utc>) -> String {
        match self {
            Grain::Day => start.format("%Y-%m-%d").to_string(),
            Grain::Hour => start.format("%Y-%m-%dT%H").to_string(),
        }
    }

    pub(super) fn parse(self, key: &str) -> Option<DateTime<Utc>> {
        let full = match self {
            Grain::Day => format!("{key}T00:00:00"),
            Grain::Hour => format!("{key}:00:00"),
        };
        NaiveDateTime::parse_from_str(&full, "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc())
    }

    /// The key of a timestamp column, in SQL (as the triggers of migrations 0010/0013 write it).
    pub(super) fn sql_key(self, d: &Dialect, column: &str) -> String {
        match self {
            Grain::Day => d.day(column),
            Grain::Hour => d.hour(column),
        }
    }

    /// The key column of this grain's tables.
    pub(super) fn column(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Hour => "hour",
        }
    }

    pub(super) fn sums_table(self) -> &'static str {
        match self {
            Grain::Day => "alert_metrics_daily",
            Grain::Hour => "alert_metrics_hourly",
        }
    }

    pub(super) fn rules_table(self) -> &'static str {
        match self {
            Grain::Day => "alert_rule_metrics_daily",
            Grain::Hour => "alert_rule_metrics_hourly",
        }
    }

    pub(super) fn dirty_table(self) -> &'static str {
        match self {
            Grain::Day => "alert_metrics_dirty_days",
            Grain::Hour => "alert_metrics_dirty_hours",
        }
    }

    /// The column of `alert_metrics_rollup_state` that holds this grain's mark.
    pub(super) fn mark_column(self) -> &'static str {
        match self {
            Grain::Day => "rolled_until",
            Grain::Hour => "hours_rolled_until",
        }
    }
}

/// A grain's rollup state: buckets before `until` are rolled up, except the dirty ones.
#[derive(Debug, Default)]
pub(super) struct Mark {
    pub until: Option<DateTime<Utc>>,
    pub dirty: BTreeSet<DateTime<Utc>>,
}

/// Bucket-aligned ranges `[first, end)` of one grain read from its rollups, minus `skip` (keys of
/// dirty buckets, which are read at the finer grain or live).
#[derive(Debug, Default, PartialEq)]
pub(super) struct Rolled {
    pub ranges: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    pub skip: Vec<String>,
}

/// Where each part of `[from, to)` is read from.
#[derive(Debug, PartialEq)]
pub(super) struct Plan {
    pub days: Rolled,
    pub hours: Rolled,
    /// Time ranges aggregated live from `alerts`: disjoint, ascending.
    pub live: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The whole days, then the whole hours of what is left, then the rest live.
pub(super) fn plan(from: DateTime<Utc>, to: DateTime<Utc>, days: &Mark, hours: &Mark) -> Plan {
    let mut day_plan = Rolled::default();
    let mut hour_plan = Rolled::default();
    let mut live: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (start, stop) in split(Grain::Day, from, to, days, &mut day_plan) {
        for range in split(Grain::Hour, start, stop, hours, &mut hour_plan) {
            match live.last_mut() {
                Some(last) if last.1 == range.0 => last.1 = range.1,
                _ => live.push(range),
            }
        }
    }
    Plan { days: day_plan, hours: hour_plan, live }
}

/// Adds the rolled-up part of `[from, to)` at `grain` to `rolled` and returns the rest: the
/// partial buckets at both ends, the dirty buckets and what lies past the mark.
fn split(grain: Grain, from: DateTime<Utc>, to: DateTime<Utc>, mark: &Mark, rolled: &mut Rolled) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let first = grain.ceil(from);
    let end = match mark.until {
        Some(until) => grain.floor(to).min(until),
        None => first,
    };
    if first >= end {
        return vec![(from, to)];
    }
    let mut rest: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut push = |start: DateTime<Utc>, stop: DateTime<Utc>| {
        if start >= stop {
            return;
        }
        match rest.last_mut() {
            Some(last) if last.1 == start => last.1 = stop,
            _ => rest.push((start, stop)),
        }
    };
    push(from, first);
    for bucket in mark.dirty.range(first..end) {
        push(*bucket, *bucket + grain.step());
        rolled.skip.push(grain.key(*bucket));
    }
    push(end, to);
    rolled.ranges.push((first, end));
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, h, m, 0).unwrap()
    }

    fn mark(until: Option<DateTime<Utc>>, dirty: &[DateTime<Utc>]) -> Mark {
        Mark { until, dirty: dirty.iter().copied().collect() }
    }

    #[test]
    fn keys_round_trip_and_sort_as_times() {
        for grain in [Grain::Day, Grain::Hour] {
            let start = grain.floor(at(3, 7, 45));
            assert_eq!(grain.parse(&grain.key(start)), Some(start));
        }
        assert_eq!(Grain::Hour.key(at(3, 7, 45)), "2026-01-03T07");
        assert!(Grain::Hour.key(at(3, 9, 0)) < Grain::Hour.key(at(3, 10, 0)));
        assert_eq!(Grain::Day.parse("2026-13-01"), None);
    }

    #[test]
    fn nothing_rolled_up_is_all_live() {
        let p = plan(at(1, 5, 0), at(9, 5, 0), &Mark::default(), &Mark::default());
        assert_eq!(p, Plan { days: Rolled::default(), hours: Rolled::default(), live: vec![(at(1, 5, 0), at(9, 5, 0))] });
    }

    #[test]
    fn whole_days_then_whole_hours_then_live() {
        let days = mark(Some(at(7, 0, 0)), &[at(3, 0, 0), at(4, 0, 0)]);
        let hours = mark(Some(at(9, 3, 0)), &[at(3, 10, 0)]);
        let p = plan(at(1, 5, 30), at(9, 5, 10), &days, &hours);
        assert_eq!(p.days, Rolled { ranges: vec![(at(2, 0, 0), at(7, 0, 0))], skip: vec!["2026-01-03".into(), "2026-01-04".into()] });
        assert_eq!(
            p.hours,
            Rolled {
                ranges: vec![(at(1, 6, 0), at(2, 0, 0)), (at(3, 0, 0), at(5, 0, 0)), (at(7, 0, 0), at(9, 3, 0))],
                skip: vec!["2026-01-03T10".into()],
            }
        );
        // The partial first hour, the dirty hour, and everything past the hourly mark.
        assert_eq!(p.live, vec![(at(1, 5, 30), at(1, 6, 0)), (at(3, 10, 0), at(3, 11, 0)), (at(9, 3, 0), at(9, 5, 10))]);
    }

    #[test]
    fn aligned_bounds_need_no_live_part() {
        let rolled = mark(Some(at(20, 0, 0)), &[]);
        let p = plan(at(1, 0, 0), at(3, 0, 0), &rolled, &rolled);
        assert_eq!(p.days.ranges, vec![(at(1, 0, 0), at(3, 0, 0))]);
        assert!(p.hours.ranges.is_empty() && p.live.is_empty());
        // Inside one hour: live.
        let p = plan(at(1, 1, 5), at(1, 1, 50), &rolled, &rolled);
        assert_eq!(p.live, vec![(at(1, 1, 5), at(1, 1, 50))]);
        // Inside one day: hours.
        let p = plan(at(1, 1, 0), at(1, 4, 30), &rolled, &rolled);
        assert_eq!((p.hours.ranges, p.live), (vec![(at(1, 1, 0), at(1, 4, 0))], vec![(at(1, 4, 0), at(1, 4, 30))]));
    }

    #[test]
    fn hours_without_a_mark_leave_the_partial_days_live() {
        // Right after migration 0013: daily rollups exist, hourly ones not yet.
        let p = plan(at(1, 5, 0), at(4, 5, 0), &mark(Some(at(4, 0, 0)), &[]), &Mark::default());
        assert_eq!(p.days.ranges, vec![(at(2, 0, 0), at(4, 0, 0))]);
        assert_eq!(p.live, vec![(at(1, 5, 0), at(2, 0, 0)), (at(4, 0, 0), at(4, 5, 0))]);
    }
}
