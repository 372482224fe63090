//! Templates and expressions: minijinja, with helpers for time.
//!
//! Time enters only through the `now` variable the engine puts in the
//! context, so rendering is pure. Timestamps are RFC 3339 strings.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use minijinja::value::{Serde, Value as JValue};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Work one template or expression may do: stops a loop in a template.
const FUEL: u64 = 50_000;

/// Names the engine provides in every context.
pub const BUILTINS: [&str; 6] = ["now", "contact", "answer", "flow", "range", "input"];

type Compiled = Arc<minijinja::Expression<'static, 'static>>;

/// The environment, with every template and expression compiled once: flows
/// are few and their texts fixed, messages many.
pub struct Templates {
    env: Environment<'static>,
    expressions: Mutex<HashMap<String, Compiled>>,
}

/// The variables templates and expressions see, converted once for many
/// of them: converting a run's variables was most of what rendering one
/// cost, and a step renders several.
#[derive(Clone, Debug, PartialEq)]
pub struct Context(JValue);

impl Context {
    /// The context of `vars`, a JSON object or anything that serialises
    /// as one.
    pub fn new(vars: &impl serde::Serialize) -> Context {
        Context(JValue::from(Serde(vars)))
    }
}

/// Compiled expressions kept at most; flows hold far fewer.
const MAX_CACHED: usize = 10_000;

impl Templates {
    /// The one set of templates the engine and the checker use.
    pub fn global() -> &'static Templates {
        static T: OnceLock<Templates> = OnceLock::new();
        T.get_or_init(Templates::new)
    }

    fn new() -> Templates {
        let mut env = Environment::new();
        // A template's name is its source: the loader compiles it on first
        // use and the environment keeps it.
        env.set_loader(|name| Ok(Some(name.to_string())));
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        env.add_filter("date", date);
        env.add_filter("add_minutes", |t: String, n: f64| shift(&t, n * 60.0));
        env.add_filter("add_hours", |t: String, n: f64| shift(&t, n * 3600.0));
        env.add_filter("add_days", |t: String, n: f64| shift(&t, n * 86_400.0));
        env.add_filter("seconds_until", seconds_until);
        env.add_filter("time_remaining", time_remaining);
        env.add_filter("duration", |secs: f64| Ok::<_, Error>(duration_text(secs)));
        Templates {
            env,
            expressions: Mutex::new(HashMap::new()),
        }
    }

    fn expression(&'static self, expr: &str) -> Result<Compiled, String> {
        if let Some(e) = self
            .expressions
            .lock()
            .ok()
            .and_then(|c| c.get(expr).cloned())
        {
            return Ok(e);
        }
        let compiled = Arc::new(
            self.env
                .compile_expression_owned(expr.to_string())
                .map_err(|e| describe(&e))?,
        );
        if let Ok(mut c) = self.expressions.lock() {
            if c.len() >= MAX_CACHED {
                c.clear();
            }
            c.insert(expr.to_string(), compiled.clone());
        }
        Ok(compiled)
    }

    /// Renders a template with `ctx` (a JSON object).
    pub fn render(&'static self, template: &str, ctx: &Value) -> Result<String, String> {
        self.render_in(template, &Context::new(ctx))
    }

    /// Renders a template in a context made ready before.
    pub fn render_in(&'static self, template: &str, ctx: &Context) -> Result<String, String> {
        let t = self.env.get_template(template).map_err(|e| describe(&e))?;
        t.render(ctx.0.clone()).map_err(|e| describe(&e))
    }

    /// Evaluates an expression with `ctx` to a JSON value.
    pub fn eval(&'static self, expr: &str, ctx: &Value) -> Result<Value, String> {
        self.eval_in(expr, &Context::new(ctx))
    }

    /// Evaluates an expression in a context made ready before.
    pub fn eval_in(&'static self, expr: &str, ctx: &Context) -> Result<Value, String> {
        let compiled = self.expression(expr)?;
        let v = compiled.eval(ctx.0.clone()).map_err(|e| describe(&e))?;
        if v.is_undefined() {
            return Ok(Value::Null);
        }
        serde_json::to_value(&v).map_err(|e| e.to_string())
    }

    /// Evaluates a condition: true when the expression is truthy.
    pub fn test(&'static self, expr: &str, ctx: &Value) -> Result<bool, String> {
        self.test_in(expr, &Context::new(ctx))
    }

    /// Evaluates a condition in a context made ready before.
    pub fn test_in(&'static self, expr: &str, ctx: &Context) -> Result<bool, String> {
        let compiled = self.expression(expr)?;
        compiled
            .eval(ctx.0.clone())
            .map(|v| v.is_true())
            .map_err(|e| describe(&e))
    }

    /// The top-level variables a template reads, or why it does not compile.
    pub fn template_variables(&self, template: &str) -> Result<HashSet<String>, String> {
        let t = self
            .env
            .template_from_str(template)
            .map_err(|e| describe(&e))?;
        Ok(t.undeclared_variables(false))
    }

    /// The top-level variables an expression reads, or why it does not compile.
    pub fn expression_variables(&self, expr: &str) -> Result<HashSet<String>, String> {
        let e = self
            .env
            .compile_expression(expr)
            .map_err(|e| describe(&e))?;
        Ok(e.undeclared_variables(false))
    }
}

fn describe(e: &Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn parse_time(t: &str) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::parse(t.trim(), &Rfc3339)
        .map_err(|_| bad(format!("'{t}' is not an RFC 3339 time")))
}

pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A text with nothing in it for the template engine (no expression, tag
/// or comment, and no trailing newline, which rendering drops): it renders
/// as itself, with no context to make. Most of a flow's texts are such.
pub fn plain(source: &str) -> Option<&str> {
    (!source.contains('{') && !source.ends_with(['\n', '\r'])).then_some(source)
}

/// Unix milliseconds as the RFC 3339 text templates work with.
pub fn time_text(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(format_time)
        .unwrap_or_default()
}

fn shift(t: &str, seconds: f64) -> Result<String, Error> {
    let base = parse_time(t)?;
    if !seconds.is_finite() || seconds.abs() > 1.0e10 {
        return Err(bad("a duration out of range"));
    }
    let shifted = base + time::Duration::seconds_f64(seconds);
    Ok(format_time(shifted))
}

/// `now | date('%Y%m%d%H%M%S')`: strftime-style formatting (%Y %y %m %d %e
/// %H %M %S %b %B %a %A %%).
fn date(t: String, fmt: Option<String>) -> Result<String, Error> {
    let t = parse_time(&t)?;
    let fmt = fmt.unwrap_or_else(|| "%Y-%m-%d %H:%M".into());
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{:04}", t.year())),
            Some('y') => out.push_str(&format!("{:02}", t.year().rem_euclid(100))),
            Some('m') => out.push_str(&format!("{:02}", t.month() as u8)),
            Some('d') => out.push_str(&format!("{:02}", t.day())),
            Some('e') => out.push_str(&t.day().to_string()),
            Some('H') => out.push_str(&format!("{:02}", t.hour())),
            Some('M') => out.push_str(&format!("{:02}", t.minute())),
            Some('S') => out.push_str(&format!("{:02}", t.second())),
            Some('B') => out.push_str(&t.month().to_string()),
            Some('b') => out.push_str(&t.month().to_string()[..3]),
            Some('A') => out.push_str(&t.weekday().to_string()),
            Some('a') => out.push_str(&t.weekday().to_string()[..3]),
            Some('%') => out.push('%'),
            Some(other) => return Err(bad(format!("date format %{other} is not supported"))),
            None => out.push('%'),
        }
    }
    Ok(out)
}

fn now_of(state: &State) -> Result<OffsetDateTime, Error> {
    let now = state.lookup("now").ok_or_else(|| bad("`now` is not set"))?;
    parse_time(now.as_str().unwrap_or(""))
}

/// Seconds from `now` until `deadline`; negative once it has passed.
fn seconds_until(state: &State, deadline: String) -> Result<f64, Error> {
    Ok((parse_time(&deadline)? - now_of(state)?).as_seconds_f64())
}

/// `deadline | time_remaining`: "44h 32m", or "overdue by 3h 05m".
fn time_remaining(state: &State, deadline: String) -> Result<String, Error> {
    let secs = seconds_until(state, deadline)?;
    Ok(if secs >= 0.0 {
        duration_text(secs)
    } else {
        format!("overdue by {}", duration_text(-secs))
    })
}

/// Whole hours and minutes: "44h 32m".
pub fn duration_text(secs: f64) -> String {
    let minutes = (secs.max(0.0) / 60.0).floor() as u64;
    format!("{}h {:02}m", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx() -> Value {
        json!({"now": "2026-01-18T14:30:22Z", "name": "Ana", "n": 3, "contact": {"phone": "+27123456789"}})
    }

    #[test]
    fn a_plain_text_renders_as_itself_and_only_it_is_plain() {
        let t = Templates::global();
        for source in [
            "Hello! 👋 What's your name?",
            "",
            "  spaced  ",
            "two\nlines",
            "a } alone",
            "Hi {{ name }}",
            "{% if n %}yes{% endif %}",
            "{# note #}text",
            "ends in a newline\n",
            "ends in a carriage return\r\n",
            "a { alone",
        ] {
            let rendered = t.render(source, &ctx()).unwrap();
            match plain(source) {
                Some(text) => assert_eq!(text, rendered, "{source:?}"),
                None => assert!(
                    source.contains('{') || source.ends_with('\n'),
                    "{source:?} was not taken as plain"
                ),
            }
        }
        assert_eq!(plain("Hi {{ name }}"), None);
        assert_eq!(plain("line\n"), None);
        assert_eq!(plain("Thanks!"), Some("Thanks!"));
    }

    #[test]
    fn renders_and_evaluates() {
        let t = Templates::global();
        assert_eq!(
            t.render("Hi {{ name }} ({{ contact.phone }})", &ctx())
                .unwrap(),
            "Hi Ana (+27123456789)"
        );
        assert_eq!(t.render("{{ missing.deeply }}!", &ctx()).unwrap(), "!");
        assert_eq!(t.eval("n * 2", &ctx()).unwrap(), 6);
        assert_eq!(t.eval("missing", &ctx()).unwrap(), Value::Null);
        assert!(t.test("n >= 3 and name == 'Ana'", &ctx()).unwrap());
        assert!(!t.test("missing", &ctx()).unwrap());
        assert!(t.render("{{ oops", &ctx()).is_err());
    }

    #[test]
    fn time_helpers() {
        let t = Templates::global();
        assert_eq!(
            t.eval("'DEF-' ~ now | date('%Y%m%d%H%M%S')", &ctx())
                .unwrap(),
            "DEF-20260118143022"
        );
        assert_eq!(
            t.render("{{ now | date('%e %B %Y, %a') }}", &ctx())
                .unwrap(),
            "18 January 2026, Sun"
        );
        assert_eq!(
            t.eval("now | add_hours(24)", &ctx()).unwrap(),
            "2026-01-19T14:30:22Z"
        );
        assert_eq!(
            t.eval("now | add_days(-1)", &ctx()).unwrap(),
            "2026-01-17T14:30:22Z"
        );
        assert_eq!(
            t.eval("now | add_minutes(90) | date('%H:%M')", &ctx())
                .unwrap(),
            "16:00"
        );
        assert_eq!(
            t.render("{{ '2026-01-20T11:02:22Z' | time_remaining }}", &ctx())
                .unwrap(),
            "44h 32m"
        );
        assert_eq!(
            t.render("{{ '2026-01-18T11:25:22Z' | time_remaining }}", &ctx())
                .unwrap(),
            "overdue by 3h 05m"
        );
        assert_eq!(
            t.eval("'2026-01-18T15:30:22Z' | seconds_until", &ctx())
                .unwrap(),
            3600.0
        );
        assert!(t.eval("'yesterday' | add_hours(1)", &ctx()).is_err());
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let t = Templates::global();
        let err = t.render(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &ctx(),
        );
        assert!(
            err.unwrap_err().contains("fuel"),
            "stopped by the fuel limit"
        );
    }

    #[test]
    fn variables_are_listed() {
        let t = Templates::global();
        let vars = t
            .template_variables("{{ a }} {% if b %}{{ c.d }}{% endif %}")
            .unwrap();
        assert_eq!(
            vars,
            HashSet::from(["a".to_string(), "b".into(), "c".into()])
        );
        assert_eq!(
            t.expression_variables("x + y.z").unwrap(),
            HashSet::from(["x".to_string(), "y".into()])
        );
        assert!(t.expression_variables("x +").is_err());
    }
}
