//! A synthetic cache of any size with a realistic shape: a shop whose orders change most, a few hot
//! customers, an append-only event table without a key, one customer with 10,000 versions, a
//! 100,000-row customers table, and one bulk transaction of 10,000 changes. Orders, their items
//! and support tickets point at customers, orders and products by foreign keys, as in a real
//! shop, for related history. Written through the real `CacheWriter`, as capture would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rowtrail::decode::image::RowChange;
use rowtrail::decode::pgoutput::{OldRow, TupleData, TupleValue};
use rowtrail::model::{
    Column, ForeignKey, Lsn, Oid, RelationSchema, ReplicaIdentity, TableName, Value, Xid,
};
use rowtrail::store::{BaselineState, CacheWriter, CaptureState, SourceIdentity, TxMeta};

/// The customer who gets 10,000 versions, for "one record at a moment".
pub const HOT_CUSTOMER: u64 = 42;
pub const CUSTOMERS: u64 = 100_000;
pub const PRODUCTS: u64 = 10_000;
pub const BULK_CHANGES: u64 = 10_000;
pub const HOT_VERSIONS: u64 = 10_000;

/// The demo's deterministic generator, with the bounds and the skew the synthetic shop needs.
struct Random(rowtrail::demo::Random);

impl Random {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    /// Skewed towards small numbers: about 80% of picks land in the lowest 20%.
    fn skewed(&mut self, bound: u64) -> u64 {
        let uniform = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((uniform.powf(3.0)) * bound as f64) as u64 % bound.max(1)
    }
}

fn column(name: &str, type_oid: u32, type_name: &str, key: bool) -> Column {
    Column {
        name: name.to_owned(),
        type_oid,
        base_type_oid: type_oid,
        type_modifier: -1,
        type_name: type_name.to_owned(),
        in_replica_identity: key,
        identity: None,
        attnum: None,
    }
}

fn schema(
    oid: Oid,
    name: &str,
    identity: ReplicaIdentity,
    columns: Vec<Column>,
    key: Vec<usize>,
) -> RelationSchema {
    RelationSchema {
        oid,
        table: TableName::new("public", name),
        replica_identity: identity,
        columns,
        key,
        foreign_keys: Vec::new(),
        key_read_later: false,
    }
}

/// `columns` of the table point at `table`'s `id`.
fn points_at(column: &str, table: &str) -> ForeignKey {
    ForeignKey {
        name: format!("{column}_fkey"),
        columns: vec![column.to_owned()],
        referenced_table: TableName::new("public", table),
        referenced_columns: vec!["id".to_owned()],
    }
}

fn tables() -> [RelationSchema; 6] {
    let full = ReplicaIdentity::Full;
    let mut tables = [
        schema(
            16_401,
            "customers",
            full,
            vec![
                column("id", 20, "bigint", true),
                column("name", 25, "text", true),
                column("plan", 25, "text", true),
                column("email", 25, "text", true),
                column("profile", 3802, "jsonb", true),
            ],
            vec![0],
        ),
        schema(
            16_402,
            "products",
            full,
            vec![
                column("id", 20, "bigint", true),
                column("name", 25, "text", true),
                column("price", 1700, "numeric(10,2)", true),
            ],
            vec![0],
        ),
        schema(
            16_403,
            "orders",
            full,
            vec![
                column("id", 20, "bigint", true),
                column("customer_id", 20, "bigint", true),
                column("status", 25, "text", true),
                column("total", 1700, "numeric(12,2)", true),
                column("note", 25, "text", true),
            ],
            vec![0],
        ),
        schema(
            16_404,
            "order_items",
            full,
            vec![
                column("order_id", 20, "bigint", true),
                column("line", 23, "integer", true),
                column("product_id", 20, "bigint", true),
                column("qty", 23, "integer", true),
            ],
            vec![0, 1],
        ),
        schema(
            16_405,
            "events",
            full,
            vec![
                column("at", 1184, "timestamp with time zone", true),
                column("kind", 25, "text", true),
                column("detail", 25, "text", true),
            ],
            Vec::new(),
        ),
        schema(
            16_406,
            "tickets",
            full,
            vec![
                column("id", 20, "bigint", true),
                column("customer_id", 20, "bigint", true),
                column("subject", 25, "text", true),
                column("state", 25, "text", true),
            ],
            vec![0],
        ),
    ];
    tables[2].foreign_keys = vec![points_at("customer_id", "customers")];
    tables[3].foreign_keys = vec![
        points_at("order_id", "orders"),
        points_at("product_id", "products"),
    ];
    tables[5].foreign_keys = vec![points_at("customer_id", "customers")];
    tables
}

fn tuple(values: &[String]) -> TupleData {
    TupleData(
        values
            .iter()
            .map(|value| TupleValue::Text(value.clone()))
            .collect(),
    )
}

fn row(values: &[String]) -> Vec<Value> {
    values
        .iter()
        .map(|value| Value::Text(value.clone()))
        .collect()
}

const STATUSES: [&str; 4] = ["new", "paid", "shipped", "cancelled"];
const PLANS: [&str; 3] = ["free", "pro", "team"];
const CITIES: [&str; 6] = ["Oslo", "Bergen", "Lisbon", "Porto", "Lyon", "Kyoto"];

fn customer(id: u64, version: u64) -> Vec<String> {
    vec![
        id.to_string(),
        format!("Customer {id}"),
        PLANS[(version % 3) as usize].to_owned(),
        format!("c{id}@example.com"),
        format!(
            "{{\"tags\": [\"v{version}\"], \"address\": {{\"zip\": \"{:04}\", \"city\": \"{}\"}}}}",
            id % 10_000,
            CITIES[((id + version) % 6) as usize]
        ),
    ]
}

fn order(id: u64, customer: u64, status: &str, total: u64) -> Vec<String> {
    vec![
        id.to_string(),
        customer.to_string(),
        status.to_owned(),
        format!("{}.{:02}", total / 100, total % 100),
        format!("order {id} for customer {customer}"),
    ]
}

/// Writes the synthetic cache at `path` with about `changes` changes. Returns the xid of the bulk
/// transaction.
pub fn build(
    path: &Path,
    changes: u64,
    seed: u64,
    mut progress: impl FnMut(u64),
) -> Result<Xid, Box<dyn std::error::Error>> {
    let source = SourceIdentity {
        system_identifier: format!("synthetic-{seed}"),
        database: "shop".to_owned(),
        display: format!("synthetic shop, {changes} changes (seed {seed})"),
        server_version: "synthetic".to_owned(),
    };
    let mut writer = CacheWriter::open(path, &source)?;
    writer.set_capture_state(&CaptureState {
        slot: "synthetic".into(),
        publication: "synthetic".into(),
        baseline: BaselineState::Pending,
        position: Lsn::ZERO,
    })?;
    let schemas: Vec<Arc<RelationSchema>> = tables().into_iter().map(Arc::new).collect();
    let [customers, products, orders, items, events, tickets] =
        [0, 1, 2, 3, 4, 5].map(|index| schemas[index].oid);
    let start: DateTime<Utc> = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_else(Utc::now);
    let mut lsn = 0x1000_0000u64;
    for schema in &schemas {
        writer.register_relation((**schema).clone(), Lsn(lsn))?;
    }

    // The baseline: every customer and product.
    writer.begin(TxMeta {
        xid: None,
        commit_lsn: Lsn(lsn),
        committed_at: start,
        is_baseline: true,
    })?;
    let mut customer_versions = vec![0u64; CUSTOMERS as usize + 1];
    for id in 1..=CUSTOMERS {
        writer.snapshot_row(Lsn(lsn), customers, row(&customer(id, 0)))?;
    }
    for id in 1..=PRODUCTS {
        writer.snapshot_row(
            Lsn(lsn),
            products,
            row(&[
                id.to_string(),
                format!("Product {id}"),
                format!("{}.99", id % 500),
            ]),
        )?;
    }
    writer.commit(Lsn(lsn))?;
    writer.flush()?;
    let mut written = CUSTOMERS + PRODUCTS;

    let mut random = Random(rowtrail::demo::Random::new(seed));
    let mut open_orders: Vec<(u64, u64, usize, u64)> = Vec::new();
    let mut open_tickets: Vec<(u64, u64)> = Vec::new();
    let mut next_ticket = 1u64;
    let mut next_order = 1u64;
    let mut xid = 1000u32;
    let mut bulk = Xid(0);
    let streamed = changes.saturating_sub(written);
    let transactions = streamed / 10;
    let seconds_per_tx = (30.0 * 86_400.0 / transactions.max(1) as f64).max(0.000_001);
    let hot_every = (transactions / HOT_VERSIONS).max(1);
    let bulk_at = transactions / 2;
    let users = 50;
    let mut tx_index = 0u64;
    while written < changes {
        tx_index += 1;
        xid = xid.wrapping_add(1);
        lsn += 0x400;
        let committed_at =
            start + Duration::microseconds((tx_index as f64 * seconds_per_tx * 1e6) as i64);
        writer.begin(TxMeta {
            xid: Some(Xid(xid)),
            commit_lsn: Lsn(lsn),
            committed_at,
            is_baseline: false,
        })?;
        let user = random.skewed(users);
        let mut context = serde_json::Map::new();
        context.insert("user".into(), format!("user{user}").into());
        context.insert(
            "endpoint".into(),
            [
                "POST /orders",
                "PUT /orders",
                "PUT /customers",
                "POST /events",
            ][(tx_index % 4) as usize]
                .into(),
        );
        context.insert("request_id".into(), format!("r{tx_index:x}").into());
        writer.set_context(&context)?;
        let size = if tx_index == bulk_at {
            BULK_CHANGES
        } else {
            10
        };
        if tx_index == bulk_at {
            bulk = Xid(xid);
        }
        let mut made = 0u64;
        while made < size && written + made < changes {
            lsn += 0x40;
            let change = if tx_index.is_multiple_of(hot_every)
                && made == 0
                && customer_versions[HOT_CUSTOMER as usize] < HOT_VERSIONS
            {
                (
                    customers,
                    customer_update(&mut customer_versions, HOT_CUSTOMER),
                )
            } else if size == BULK_CHANGES && !open_orders.is_empty() {
                let index = random.below(open_orders.len() as u64) as usize;
                (orders, order_update(&mut open_orders, index, "cancelled"))
            } else {
                match random.below(100) {
                    0..=14 => {
                        let id = next_order;
                        next_order += 1;
                        let customer_id = 1 + random.skewed(CUSTOMERS);
                        let total = random.below(100_000);
                        open_orders.push((id, customer_id, 0, total));
                        (
                            orders,
                            RowChange::Insert {
                                new: tuple(&order(id, customer_id, "new", total)),
                            },
                        )
                    }
                    15..=44 if !open_orders.is_empty() => {
                        let index = open_orders.len()
                            - 1
                            - random.skewed(open_orders.len() as u64) as usize;
                        let status = STATUSES[(open_orders[index].2 + 1) % 4];
                        (orders, order_update(&mut open_orders, index, status))
                    }
                    45..=49 if open_orders.len() > 100 => {
                        let index = random.below(open_orders.len() as u64) as usize;
                        let (id, customer_id, status, total) = open_orders.swap_remove(index);
                        (
                            orders,
                            RowChange::Delete {
                                old: OldRow::Full(tuple(&order(
                                    id,
                                    customer_id,
                                    STATUSES[status],
                                    total,
                                ))),
                            },
                        )
                    }
                    50..=74 => {
                        let order_id = next_order.saturating_sub(1 + random.skewed(1000)).max(1);
                        let line = random.below(1_000_000) as i64;
                        let values = [
                            order_id.to_string(),
                            line.to_string(),
                            (1 + random.below(PRODUCTS)).to_string(),
                            (1 + random.below(9)).to_string(),
                        ];
                        (
                            items,
                            RowChange::Insert {
                                new: tuple(&values),
                            },
                        )
                    }
                    75..=84 => {
                        let id = 1 + random.skewed(CUSTOMERS);
                        (customers, customer_update(&mut customer_versions, id))
                    }
                    85..=89 => {
                        let id = 1 + random.skewed(PRODUCTS);
                        let old = [
                            id.to_string(),
                            format!("Product {id}"),
                            format!("{}.99", id % 500),
                        ];
                        let new = [
                            id.to_string(),
                            format!("Product {id}"),
                            format!("{}.49", (id + tx_index) % 500),
                        ];
                        (
                            products,
                            RowChange::Update {
                                old: Some(OldRow::Full(tuple(&old))),
                                new: tuple(&new),
                            },
                        )
                    }
                    90..=91 => {
                        // A support ticket: opened for a (skewed) customer, or closed.
                        if open_tickets.len() > 50 && random.below(2) == 0 {
                            let index = random.below(open_tickets.len() as u64) as usize;
                            let (id, customer_id) = open_tickets.swap_remove(index);
                            let ticket = |state: &str| {
                                [
                                    id.to_string(),
                                    customer_id.to_string(),
                                    format!("question {id}"),
                                    state.to_owned(),
                                ]
                            };
                            (
                                tickets,
                                RowChange::Update {
                                    old: Some(OldRow::Full(tuple(&ticket("open")))),
                                    new: tuple(&ticket("closed")),
                                },
                            )
                        } else {
                            let id = next_ticket;
                            next_ticket += 1;
                            let customer_id = 1 + random.skewed(CUSTOMERS);
                            open_tickets.push((id, customer_id));
                            let values = [
                                id.to_string(),
                                customer_id.to_string(),
                                format!("question {id}"),
                                "open".to_owned(),
                            ];
                            (
                                tickets,
                                RowChange::Insert {
                                    new: tuple(&values),
                                },
                            )
                        }
                    }
                    _ => {
                        let values = [
                            committed_at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
                            "page_view".to_owned(),
                            format!("/products/{}", random.below(PRODUCTS)),
                        ];
                        (
                            events,
                            RowChange::Insert {
                                new: tuple(&values),
                            },
                        )
                    }
                }
            };
            writer.row_change(Lsn(lsn), change.0, &change.1)?;
            made += 1;
        }
        lsn += 0x40;
        writer.commit(Lsn(lsn))?;
        written += made;
        if writer.staged_changes() >= 50_000 {
            writer.flush()?;
            progress(written);
        }
    }
    writer.flush()?;
    progress(written);
    Ok(bulk)
}

fn customer_update(versions: &mut [u64], id: u64) -> RowChange {
    let version = versions[id as usize];
    versions[id as usize] += 1;
    RowChange::Update {
        old: Some(OldRow::Full(tuple(&customer(id, version)))),
        new: tuple(&customer(id, version + 1)),
    }
}

fn order_update(open: &mut [(u64, u64, usize, u64)], index: usize, status: &str) -> RowChange {
    let (id, customer_id, old_status, total) = open[index];
    let new_status = STATUSES
        .iter()
        .position(|known| *known == status)
        .unwrap_or(0);
    open[index].2 = new_status;
    RowChange::Update {
        old: Some(OldRow::Full(tuple(&order(
            id,
            customer_id,
            STATUSES[old_status],
            total,
        )))),
        new: tuple(&order(id, customer_id, status, total)),
    }
}

/// Where a synthetic cache of this size lives, reused between runs.
pub fn path_for(directory: &Path, changes: u64, seed: u64) -> PathBuf {
    // v2: with foreign keys and tickets.
    directory.join(format!("synthetic-v2-{changes}-seed{seed}.rowtrail"))
}
