//! The demo's shop: its tables, its first rows, and a story of transactions with application
//! context — ordinary traffic plus four stories worth finding. Pure: a seed in, transactions out;
//! `live` runs them on PostgreSQL and `offline` writes them into a cache.

use serde_json::{Map, Value as Json, json};

/// The shop's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Customers,
    Products,
    Orders,
    OrderItems,
    SupportTickets,
}

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Customers,
        Table::Products,
        Table::Orders,
        Table::OrderItems,
        Table::SupportTickets,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Customers => "customers",
            Table::Products => "products",
            Table::Orders => "orders",
            Table::OrderItems => "order_items",
            Table::SupportTickets => "support_tickets",
        }
    }

    /// Column names and SQL types, in table order.
    pub fn columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Table::Customers => &[
                ("id", "integer"),
                ("name", "text"),
                ("email", "text"),
                ("plan", "text"),
                ("profile", "jsonb"),
            ],
            Table::Products => &[
                ("id", "integer"),
                ("sku", "text"),
                ("name", "text"),
                ("price", "numeric(10,2)"),
                ("stock", "integer"),
            ],
            Table::Orders => &[
                ("id", "integer"),
                ("customer_id", "integer"),
                ("status", "text"),
                ("total", "numeric(10,2)"),
                ("placed_at", "timestamp with time zone"),
            ],
            Table::OrderItems => &[
                ("order_id", "integer"),
                ("line", "integer"),
                ("product_id", "integer"),
                ("qty", "integer"),
                ("price", "numeric(10,2)"),
            ],
            Table::SupportTickets => &[
                ("id", "integer"),
                ("customer_id", "integer"),
                ("subject", "text"),
                ("status", "text"),
                ("body", "text"),
            ],
        }
    }

    /// How many leading columns form the primary key.
    pub fn key_width(self) -> usize {
        match self {
            Table::OrderItems => 2,
            _ => 1,
        }
    }

    /// Foreign keys as (column, referenced table); each references the other table's `id`.
    pub fn foreign_keys(self) -> &'static [(&'static str, Table)] {
        match self {
            Table::Orders => &[("customer_id", Table::Customers)],
            Table::OrderItems => &[("order_id", Table::Orders), ("product_id", Table::Products)],
            Table::SupportTickets => &[("customer_id", Table::Customers)],
            Table::Customers | Table::Products => &[],
        }
    }

    /// Support tickets keep the default replica identity, so the app can show what that costs.
    pub fn full_identity(self) -> bool {
        self != Table::SupportTickets
    }
}

/// The DDL of the shop.
pub const SCHEMA: &str = "
CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE,
                        plan text NOT NULL, profile jsonb NOT NULL);
CREATE TABLE products (id integer PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL,
                       price numeric(10,2) NOT NULL, stock integer NOT NULL);
CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers,
                     status text NOT NULL, total numeric(10,2) NOT NULL, placed_at timestamptz NOT NULL);
CREATE TABLE order_items (order_id integer REFERENCES orders ON DELETE CASCADE, line integer,
                          product_id integer NOT NULL REFERENCES products, qty integer NOT NULL,
                          price numeric(10,2) NOT NULL, PRIMARY KEY (order_id, line));
CREATE TABLE support_tickets (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers,
                              subject text NOT NULL, status text NOT NULL, body text NOT NULL);
ALTER TABLE customers REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE order_items REPLICA IDENTITY FULL;
-- support_tickets stays at REPLICA IDENTITY DEFAULT on purpose.
";

/// A row: one value per column, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// One change of a transaction, with whole rows so both runners have what they need.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Insert { table: Table, row: Row },
    Update { table: Table, old: Row, new: Row },
    Delete { table: Table, old: Row },
}

/// One transaction of the story, with the context the application sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub context: Map<String, Json>,
    pub steps: Vec<Step>,
    /// Which story this is, if it is one.
    pub story: Option<&'static str>,
}

const FIRST: [&str; 16] = [
    "Ann", "Bob", "Carol", "Dev", "Eve", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Lars",
    "Mira", "Nils", "Olga", "Pia",
];
const LAST: [&str; 12] = [
    "Berg", "Costa", "Dahl", "Evans", "Fischer", "Garcia", "Haugen", "Ito", "Jensen", "Kowalski",
    "Lund", "Moreau",
];
const CITIES: [&str; 8] = [
    "Oslo", "Bergen", "Lisbon", "Porto", "Lyon", "Kyoto", "Austin", "Leeds",
];
const PRODUCTS: [&str; 20] = [
    "Espresso beans 1 kg",
    "Pour-over kettle",
    "Ceramic dripper",
    "Paper filters (100)",
    "Burr grinder",
    "Milk frother",
    "Travel mug",
    "Cold brew jar",
    "Tea sampler",
    "Matcha whisk",
    "Oat milk 1 l",
    "Chai concentrate",
    "Stoneware cup",
    "Tamper",
    "Scale with timer",
    "Decaf beans 500 g",
    "Descaling tablets",
    "Gift card",
    "Barista apron",
    "Cleaning brush",
];
const STAFF: [&str; 4] = [
    "ann@shop.example",
    "bob@shop.example",
    "carol@shop.example",
    "dev@shop.example",
];
const SUBJECTS: [&str; 6] = [
    "Where is my order?",
    "Wrong item",
    "Refund request",
    "Change address",
    "Damaged parcel",
    "Invoice copy",
];

/// A small deterministic generator (xorshift), so a story can be told twice the same way. The
/// benchmarks' synthetic cache draws from it too.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    /// A generator started from `seed` (any value; zero is avoided).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn text(value: impl Into<String>) -> Option<String> {
    Some(value.into())
}

/// The shop as the demo believes it is, and where its story is.
#[derive(Debug, Clone)]
pub struct Shop {
    random: Random,
    customers: Vec<Row>,
    products: Vec<Row>,
    orders: Vec<Row>,
    items: Vec<Row>,
    tickets: Vec<Row>,
    told: usize,
    request: u64,
}

/// How the story's time is written into `placed_at`: a fixed clock keeps the story pure.
pub type Clock = dyn Fn() -> String;

impl Shop {
    /// The shop's first rows: 60 customers, 20 products, 80 orders with items, 12 tickets.
    pub fn new(seed: u64, now: &Clock) -> Self {
        let mut random = Random::new(seed);
        let customers: Vec<Row> = (1..=60)
            .map(|id| {
                let first = FIRST[id % FIRST.len()];
                let last = LAST[(id * 7) % LAST.len()];
                vec![
                    text(id.to_string()),
                    text(format!("{first} {last}")),
                    text(format!("{}.{}{id}@mail.example", first.to_lowercase(), last.to_lowercase())),
                    text(if id % 5 == 0 { "pro" } else { "free" }),
                    text(json!({"address": {"city": CITIES[id % CITIES.len()], "zip": format!("{:04}", id * 37 % 9999)}, "newsletter": id % 2 == 0}).to_string()),
                ]
            })
            .collect();
        let products: Vec<Row> = PRODUCTS
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let id = index + 1;
                let price = if id == 7 {
                    1999
                } else {
                    399 + (id as u64 * 517) % 6000
                };
                vec![
                    text(id.to_string()),
                    text(format!("SKU-{:04}", id * 11)),
                    text(*name),
                    text(money(price)),
                    text((20 + id * 3).to_string()),
                ]
            })
            .collect();
        let mut shop = Self {
            random: Random(random.next_u64()),
            customers,
            products,
            orders: Vec::new(),
            items: Vec::new(),
            tickets: Vec::new(),
            told: 0,
            request: 1000,
        };
        for _ in 0..80 {
            let customer = 1 + shop.random.below(60);
            let status = *shop.random.pick(&["paid", "shipped", "delivered"]);
            // The first orders become plain rows; their steps are not a transaction.
            shop.order_steps(customer, status, now);
        }
        for id in 1..=12 {
            let customer = 1 + shop.random.below(60);
            let subject = *shop.random.pick(&SUBJECTS);
            shop.tickets.push(vec![
                text(id.to_string()),
                text(customer.to_string()),
                text(subject),
                text(if id % 3 == 0 { "closed" } else { "open" }),
                text(format!("Customer {customer} wrote: {subject}")),
            ]);
        }
        shop
    }

    /// Every row of the shop, tables in an order foreign keys accept.
    pub fn rows(&self) -> Vec<(Table, Row)> {
        let mut rows = Vec::new();
        for (table, list) in [
            (Table::Customers, &self.customers),
            (Table::Products, &self.products),
            (Table::Orders, &self.orders),
            (Table::OrderItems, &self.items),
            (Table::SupportTickets, &self.tickets),
        ] {
            rows.extend(list.iter().map(|row| (table, row.clone())));
        }
        rows
    }

    fn context(&mut self, user: &str, endpoint: String) -> Map<String, Json> {
        self.request += 1;
        let mut context = Map::new();
        context.insert("user".into(), user.into());
        context.insert("endpoint".into(), endpoint.into());
        context.insert(
            "request_id".into(),
            format!("req-{:06x}", self.request * 7919).into(),
        );
        context
    }

    /// A new order for `customer` with one to three items; the shop's lists are updated.
    fn order_steps(&mut self, customer: usize, status: &str, now: &Clock) -> Vec<Step> {
        let id = self.orders.len() + 100;
        let mut total = 0u64;
        let mut steps = Vec::new();
        let lines = 1 + self.random.below(3);
        let mut items = Vec::new();
        for line in 1..=lines {
            let product = self.random.below(self.products.len());
            let price = self.products[product][3].clone().unwrap_or_default();
            let cents = price.replace('.', "").parse::<u64>().unwrap_or(0);
            let qty = 1 + self.random.below(3) as u64;
            total += cents * qty;
            items.push(vec![
                text(id.to_string()),
                text(line.to_string()),
                text((product + 1).to_string()),
                text(qty.to_string()),
                text(price),
            ]);
        }
        let order = vec![
            text(id.to_string()),
            text(customer.to_string()),
            text(status),
            text(money(total)),
            text(now()),
        ];
        steps.push(Step::Insert {
            table: Table::Orders,
            row: order.clone(),
        });
        self.orders.push(order);
        for item in items {
            steps.push(Step::Insert {
                table: Table::OrderItems,
                row: item.clone(),
            });
            self.items.push(item);
        }
        steps
    }

    /// Changes one column of a row in `list`; returns the step.
    fn update(
        list: &mut [Row],
        table: Table,
        index: usize,
        column: usize,
        value: Option<String>,
    ) -> Step {
        let old = list[index].clone();
        list[index][column] = value;
        Step::Update {
            table,
            old,
            new: list[index].clone(),
        }
    }

    /// The next transaction: one of the four stories at its turn, ordinary traffic otherwise.
    pub fn next_transaction(&mut self, now: &Clock) -> Transaction {
        self.told += 1;
        match self.told {
            4 => return self.plan_change(),
            9 => return self.price_edit(),
            14 => return self.buggy_job(),
            19 => return self.deleted_by_mistake(),
            _ => {}
        }
        // An update that changes nothing (a delivered order "moving on") is not worth telling.
        loop {
            let transaction = self.ordinary(now);
            let changes_something = transaction.steps.iter().all(|step| match step {
                Step::Update { old, new, .. } => old != new,
                _ => true,
            });
            if changes_something {
                return transaction;
            }
        }
    }

    /// Everyday traffic: orders, status changes, tickets, profile edits and restocking.
    fn ordinary(&mut self, now: &Clock) -> Transaction {
        match self.random.below(10) {
            0..=3 => {
                let customer = 1 + self.random.below(self.customers.len());
                let email = self.customers[customer - 1][2].clone().unwrap_or_default();
                let context = self.context(&email, "POST /orders".to_owned());
                let steps = self.order_steps(customer, "new", now);
                Transaction {
                    context,
                    steps,
                    story: None,
                }
            }
            4..=6 if !self.orders.is_empty() => {
                let index = self.orders.len() - 1 - self.random.below(self.orders.len().min(20));
                let next = match self.orders[index][2].as_deref() {
                    Some("new") => "paid",
                    Some("paid") => "shipped",
                    Some("shipped") => "delivered",
                    _ => "delivered",
                };
                let id = self.orders[index][0].clone().unwrap_or_default();
                let staff = *self.random.pick(&STAFF);
                let context = self.context(staff, format!("PUT /orders/{id}/status"));
                let step = Self::update(&mut self.orders, Table::Orders, index, 2, text(next));
                Transaction {
                    context,
                    steps: vec![step],
                    story: None,
                }
            }
            7 => {
                let index = self.random.below(self.tickets.len().max(1));
                let staff = *self.random.pick(&STAFF);
                match self.tickets.get(index).and_then(|ticket| ticket[0].clone()) {
                    Some(id) => {
                        let context = self.context(staff, format!("PUT /tickets/{id}"));
                        let status = if self.tickets[index][3].as_deref() == Some("open") {
                            "closed"
                        } else {
                            "open"
                        };
                        let step = Self::update(
                            &mut self.tickets,
                            Table::SupportTickets,
                            index,
                            3,
                            text(status),
                        );
                        Transaction {
                            context,
                            steps: vec![step],
                            story: None,
                        }
                    }
                    None => self.ordinary(now),
                }
            }
            8 => {
                let customer = self.random.below(self.customers.len());
                let email = self.customers[customer][2].clone().unwrap_or_default();
                let context =
                    self.context(&email, format!("PUT /customers/{}/profile", customer + 1));
                let city = *self.random.pick(&CITIES);
                let mut profile: Json = self.customers[customer][4]
                    .as_deref()
                    .and_then(|text| serde_json::from_str(text).ok())
                    .unwrap_or_else(|| json!({}));
                profile["address"]["city"] = city.into();
                let step = Self::update(
                    &mut self.customers,
                    Table::Customers,
                    customer,
                    4,
                    text(profile.to_string()),
                );
                Transaction {
                    context,
                    steps: vec![step],
                    story: None,
                }
            }
            _ => {
                let mut context = self.context("warehouse-sync", "job restock".to_owned());
                context.insert("job".into(), "restock".into());
                let index = self.random.below(self.products.len());
                let stock = self.products[index][4]
                    .as_deref()
                    .and_then(|text| text.parse::<i64>().ok())
                    .unwrap_or(0);
                let step = Self::update(
                    &mut self.products,
                    Table::Products,
                    index,
                    4,
                    text((stock + 5).to_string()),
                );
                Transaction {
                    context,
                    steps: vec![step],
                    story: None,
                }
            }
        }
    }

    /// Story: a support agent moves customer 42 to the pro plan.
    fn plan_change(&mut self) -> Transaction {
        let context = self.context("ann@shop.example", "PUT /customers/42/plan".to_owned());
        let step = Self::update(&mut self.customers, Table::Customers, 41, 3, text("pro"));
        Transaction {
            context,
            steps: vec![step],
            story: Some("a customer's plan change"),
        }
    }

    /// Story: a price edit that drops a zero (19.99 becomes 1.99).
    fn price_edit(&mut self) -> Transaction {
        let context = self.context("bob@shop.example", "PUT /products/7".to_owned());
        let step = Self::update(&mut self.products, Table::Products, 6, 3, text("1.99"));
        Transaction {
            context,
            steps: vec![step],
            story: Some("a price edit"),
        }
    }

    /// Story: the nightly cart cleanup deletes the items of paid orders too.
    fn buggy_job(&mut self) -> Transaction {
        let mut context = self.context("nightly-cleanup", "job purge-abandoned-carts".to_owned());
        context.insert("job".into(), "purge-abandoned-carts".into());
        context.insert("version".into(), "2.4.0".into());
        let paid: Vec<String> = self
            .orders
            .iter()
            .filter(|order| order[2].as_deref() != Some("new"))
            .filter_map(|order| order[0].clone())
            .take(12)
            .collect();
        let (removed, kept): (Vec<Row>, Vec<Row>) = std::mem::take(&mut self.items)
            .into_iter()
            .partition(|item| item[0].as_ref().is_some_and(|order| paid.contains(order)));
        self.items = kept;
        let steps = removed
            .into_iter()
            .map(|old| Step::Delete {
                table: Table::OrderItems,
                old,
            })
            .collect();
        Transaction {
            context,
            steps,
            story: Some("a bulk delete by a buggy job"),
        }
    }

    /// Story: an agent deletes the wrong support ticket.
    fn deleted_by_mistake(&mut self) -> Transaction {
        let context = self.context("carol@shop.example", "DELETE /tickets/5".to_owned());
        let index = self
            .tickets
            .iter()
            .position(|ticket| ticket[0].as_deref() == Some("5"))
            .unwrap_or(0);
        let old = self
            .tickets
            .remove(index.min(self.tickets.len().saturating_sub(1)));
        Transaction {
            context,
            steps: vec![Step::Delete {
                table: Table::SupportTickets,
                old,
            }],
            story: Some("a record deleted by mistake"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    fn clock() -> String {
        "2026-11-23 12:00:00+00".to_owned()
    }

    #[test]
    fn the_story_is_deterministic_and_tells_all_four_stories() {
        let mut first = Shop::new(3, &clock);
        let mut second = Shop::new(3, &clock);
        let mut stories = Vec::new();
        for _ in 0..25 {
            let a = first.next_transaction(&clock);
            assert_eq!(a, second.next_transaction(&clock));
            assert!(!a.steps.is_empty());
            assert!(a.context.contains_key("user") && a.context.contains_key("request_id"));
            stories.extend(a.story);
        }
        assert_eq!(
            stories,
            vec![
                "a customer's plan change",
                "a price edit",
                "a bulk delete by a buggy job",
                "a record deleted by mistake"
            ]
        );
    }

    #[test]
    fn every_transaction_changes_something() {
        let mut shop = Shop::new(11, &clock);
        for _ in 0..500 {
            let transaction = shop.next_transaction(&clock);
            assert!(!transaction.steps.is_empty());
            for step in &transaction.steps {
                if let Step::Update { old, new, .. } = step {
                    assert_ne!(old, new);
                }
            }
        }
    }

    #[test]
    fn rows_match_their_tables() {
        let shop = Shop::new(1, &clock);
        for (table, row) in shop.rows() {
            assert_eq!(row.len(), table.columns().len(), "{}", table.name());
        }
        assert!(shop.rows().iter().any(|(table, row)| *table == Table::Products && row[3].as_deref() == Some("19.99")));
    }
}
