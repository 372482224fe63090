//! Demo data: a few factory orders, so the pms_menu bot can be tried at once.

use confab_store::{RecordFilter, Store};
use serde_json::{Map, Value, json};

use crate::catalog::Catalog;
use crate::clock::shift_days;

/// Orders with expected dates around `now_ms`: on track, completed, at
/// risk and late. Orders already there are left alone; returns how many
/// were added.
pub async fn load_demo_orders(
    store: &Store,
    catalog: &Catalog,
    now_ms: i64,
) -> anyhow::Result<usize> {
    let orders = catalog
        .collections
        .get("orders")
        .ok_or_else(|| anyhow::anyhow!("no collection orders is loaded"))?;
    let demo = [
        json!({"order_number": "ORD-12345", "customer": "Acme Mining", "status": "In Progress", "progress": 75, "expected_date": shift_days(now_ms, 7)}),
        json!({"order_number": "ORD-12346", "customer": "Beta Foods", "status": "Completed", "progress": 100, "expected_date": shift_days(now_ms, -3)}),
        json!({"order_number": "ORD-12347", "customer": "Gamma Steel", "status": "In Progress", "progress": 40, "expected_date": shift_days(now_ms, 1)}),
        json!({"order_number": "ORD-12348", "customer": "Delta Motors", "status": "Delayed", "progress": 60, "expected_date": shift_days(now_ms, -2)}),
    ];
    let mut added = 0;
    for order in demo {
        let fields: Map<String, Value> = order.as_object().cloned().unwrap_or_default();
        let filter = RecordFilter {
            bot_id: confab_store::DEFAULT_BOT,
            fields: vec![("order_number".into(), fields["order_number"].clone())],
            limit: 1,
            ..Default::default()
        };
        if !store.records("orders", &filter).await?.is_empty() {
            continue;
        }
        let data = orders
            .check(&fields, false)
            .map_err(|e| anyhow::anyhow!("demo order: {e}"))?;
        store
            .insert_record(confab_store::DEFAULT_BOT, "orders", None, &data, now_ms)
            .await?;
        added += 1;
    }
    Ok(added)
}
