//! Secure views over an in-memory source that records the filters it is
//! offered: only granted columns exist, every operation sees masked values,
//! and no predicate on a masked column reaches the source in raw form.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::array_value_to_string;
use chrono::NaiveDate;
use creditgate_policy::masks::MASK_FUNCTION_PREFIX;
use creditgate_policy::{DatasetGrant, MaskUdfs, Policy, PolicyError, secure_view};
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

/// The demo policy with the conventional masks (resident ID 6 + 4, mobile 3 +
/// 4, name first character, address first 6): these tests show what each
/// partial mask does inside a view. The committed demo policy now hides or
/// withholds most of those columns from the credit agency (see
/// `creditgate policy linkage`).
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/demo-policy-old-masks.toml");
const SECRET: &[u8] = b"secure view test secret 0123456789";

/// A source that accepts every filter as `Inexact` and records what it got,
/// like a connector would receive it.
#[derive(Debug)]
struct Recording {
    inner: Arc<MemTable>,
    filters: Arc<Mutex<Vec<Expr>>>,
}

impl TableProvider for Recording {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    fn scan<'a, 'b, 'c, 'd, 'async_trait>(
        &'a self,
        state: &'b dyn Session,
        projection: Option<&'c Vec<usize>>,
        filters: &'d [Expr],
        limit: Option<usize>,
    ) -> Pin<Box<dyn Future<Output = DfResult<Arc<dyn ExecutionPlan>>> + Send + 'async_trait>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        'd: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.filters.lock().expect("lock").extend(filters.iter().cloned());
            self.inner.scan(state, projection, filters, limit).await
        })
    }
}

fn enterprises_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("credit_code", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("legal_rep_name", DataType::Utf8, false),
        Field::new("legal_rep_id", DataType::Utf8, false),
        Field::new("registered_capital", DataType::Float64, false),
        Field::new("established_date", DataType::Date32, false),
        Field::new("district_code", DataType::Utf8, false),
        Field::new("address", DataType::Utf8, false),
        Field::new("business_scope", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("is_individual", DataType::Boolean, false),
        Field::new("phone", DataType::Utf8, true),
    ]));
    let text = |v: [&str; 3]| -> ArrayRef { Arc::new(StringArray::from(v.to_vec())) };
    RecordBatch::try_new(
        schema,
        vec![
            text(["91370202AAAAAAAAA1", "91370202BBBBBBBBB2", "91110105CCCCCCCCC3"]),
            text(["青岛甲公司", "青岛乙公司", "北京丙公司"]),
            text(["张三", "张四", "欧阳娜娜"]),
            // Rows A and B share the first 6 and last 4 digits: same masked value.
            text(["370202199001011234", "370202198502021234", "11010519491231002X"]),
            Arc::new(Float64Array::from(vec![1.0e6, 5.0e5, 2.0e7])),
            Arc::new(Date32Array::from(vec![14_610, 15_000, 16_000])),
            text(["370202", "370202", "110105"]),
            text(["青岛市市南区香港中路10号", "青岛市市北区辽宁路1号", "北京市西城区金融街1号"]),
            text(["贸易", "零售", "咨询"]),
            text(["存续", "存续", "注销"]),
            Arc::new(BooleanArray::from(vec![false, false, true])),
            Arc::new(StringArray::from(vec![Some("13812345678"), None, Some("13987654321")])),
        ],
    )
    .expect("batch")
}

fn policy() -> Policy {
    Policy::load(DEMO).expect("demo policy")
}

fn grant(principal: &str, dataset: &str) -> DatasetGrant {
    let policy = policy();
    let p = policy.principal(principal).expect("principal");
    policy.grant_for(p, dataset).expect("grant")
}

struct Fixture {
    ctx: SessionContext,
    filters: Arc<Mutex<Vec<Expr>>>,
    grant: DatasetGrant,
}

fn fixture(principal: &str) -> Fixture {
    let batch = enterprises_batch();
    let mem = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("memtable");
    let filters = Arc::new(Mutex::new(Vec::new()));
    let source = Arc::new(Recording { inner: Arc::new(mem), filters: filters.clone() });
    let grant = grant(principal, "market.enterprises");
    let masks = MaskUdfs::new(SECRET).expect("masks");
    let view = secure_view(source, &grant, &masks).expect("secure view");
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    ctx.register_table("ent", view).expect("register");
    Fixture { ctx, filters, grant }
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches = ctx.sql(sql).await.expect(sql).collect().await.expect(sql);
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            out.push(b.columns().iter().map(|c| array_value_to_string(c, r).expect("display")).collect());
        }
    }
    out
}

/// Does `expr` reference a masked column outside of a mask function?
fn references_raw(expr: &Expr, masked: &[String]) -> bool {
    let mut raw = false;
    expr.apply(|e| {
        Ok(match e {
            Expr::ScalarFunction(f) if f.name().starts_with(MASK_FUNCTION_PREFIX) => TreeNodeRecursion::Jump,
            Expr::Column(c) if masked.contains(&c.name) => {
                raw = true;
                TreeNodeRecursion::Stop
            }
            _ => TreeNodeRecursion::Continue,
        })
    })
    .expect("walk");
    raw
}

impl Fixture {
    fn masked_columns(&self) -> Vec<String> {
        let raw = self.grant.raw_columns();
        self.grant.columns.iter().map(|c| c.name.clone()).filter(|c| !raw.contains(c)).collect()
    }

    /// Runs `sql`, then checks no filter the source saw uses a masked column raw.
    async fn query(&self, sql: &str) -> Vec<Vec<String>> {
        self.filters.lock().expect("lock").clear();
        let out = rows(&self.ctx, sql).await;
        let masked = self.masked_columns();
        for f in self.filters.lock().expect("lock").iter() {
            assert!(!references_raw(f, &masked), "raw predicate reached the source for {sql}: {f}");
        }
        out
    }

    fn seen_filters(&self) -> Vec<String> {
        self.filters.lock().expect("lock").iter().map(ToString::to_string).collect()
    }
}

#[tokio::test]
async fn only_granted_columns_exist() {
    let f = fixture("platform_a");
    let star = f.ctx.sql("SELECT * FROM ent").await.expect("plan");
    let names: Vec<String> = star.schema().fields().iter().map(|field| field.name().clone()).collect();
    assert_eq!(
        names,
        [
            "credit_code",
            "name",
            "registered_capital",
            "established_date",
            "district_code",
            "business_scope",
            "status",
            "is_individual"
        ]
    );
    for sql in [
        "SELECT legal_rep_id FROM ent",
        "SELECT count(*) FROM ent WHERE phone = '13812345678'",
        "SELECT credit_code FROM ent ORDER BY legal_rep_name",
    ] {
        let err = match f.ctx.sql(sql).await {
            Ok(df) => df.collect().await.expect_err(sql),
            Err(e) => e,
        };
        assert!(err.to_string().contains("No field named"), "{sql}: {err}");
    }
    let described = rows(&f.ctx, "DESCRIBE ent").await;
    assert_eq!(described.len(), 8);
    let info = rows(&f.ctx, "SELECT column_name FROM information_schema.columns WHERE table_name = 'ent'").await;
    assert_eq!(info.len(), 8);
    assert!(!info.iter().any(|r| r[0] == "legal_rep_id" || r[0] == "phone"));
}

#[tokio::test]
async fn select_star_shows_masked_values() {
    let f = fixture("credit_agency");
    let out = f.query("SELECT legal_rep_name, legal_rep_id, address, phone FROM ent ORDER BY credit_code").await;
    assert_eq!(
        out,
        [
            ["欧***", "110105********002X", "北京市西城区*****", "139****4321"],
            ["张*", "370202********1234", "青岛市市南区*******", "138****5678"],
            ["张*", "370202********1234", "青岛市市北区*****", ""],
        ]
    );
}

#[tokio::test]
async fn where_on_a_masked_column_sees_masked_values() {
    let f = fixture("credit_agency");
    let raw = f.query("SELECT credit_code FROM ent WHERE legal_rep_id = '370202199001011234'").await;
    assert!(raw.is_empty(), "raw value must not match: {raw:?}");
    let seen = f.seen_filters();
    assert!(
        seen.iter().any(|s| s.contains("mask_resident_id(") && s.contains("370202199001011234")),
        "the filter reaches the source with the mask around the column: {seen:?}"
    );
    let masked = f.query("SELECT credit_code FROM ent WHERE legal_rep_id = '370202********1234'").await;
    assert_eq!(masked.len(), 2);

    // Positive control: an unmasked column is pushed raw (the recorder works).
    f.query("SELECT name FROM ent WHERE credit_code = '91370202AAAAAAAAA1'").await;
    assert!(
        f.seen_filters().iter().any(|s| s == "credit_code = Utf8(\"91370202AAAAAAAAA1\")"),
        "{:?}",
        f.seen_filters()
    );

    // The same through EXPLAIN: the scan's filter carries the mask.
    let plan = rows(&f.ctx, "EXPLAIN SELECT credit_code FROM ent WHERE legal_rep_id = 'x'").await;
    let text: String = plan.iter().map(|r| r.join(" ")).collect::<Vec<_>>().join("\n");
    assert!(
        text.contains("partial_filters=[mask_resident_id(market.enterprises.legal_rep_id) = Utf8(\"x\")]"),
        "{text}"
    );
}

#[tokio::test]
async fn range_like_and_binary_search_see_masked_values() {
    let f = fixture("credit_agency");
    // Raw: row A (born 1990) would match; masked values have '*' after the prefix.
    assert!(f.query("SELECT credit_code FROM ent WHERE legal_rep_id > '3702021990'").await.is_empty());
    assert!(
        f.query("SELECT credit_code FROM ent WHERE legal_rep_id BETWEEN '370202198' AND '370202199'").await.is_empty()
    );
    assert!(f.query("SELECT credit_code FROM ent WHERE legal_rep_id LIKE '%1990%'").await.is_empty());
    assert!(f.query("SELECT credit_code FROM ent WHERE legal_rep_name LIKE '%三'").await.is_empty());
    assert_eq!(f.query("SELECT credit_code FROM ent WHERE legal_rep_name LIKE '张%'").await.len(), 2);
    assert!(f.query("SELECT credit_code FROM ent WHERE substr(legal_rep_id, 7, 4) = '1990'").await.is_empty());
    assert!(f.query("SELECT credit_code FROM ent WHERE phone IN ('13812345678', '13987654321')").await.is_empty());
}

#[tokio::test]
async fn group_order_and_cast_see_masked_values() {
    let f = fixture("credit_agency");
    let groups = f.query("SELECT legal_rep_id, count(*) FROM ent GROUP BY legal_rep_id ORDER BY legal_rep_id").await;
    assert_eq!(groups, [["110105********002X", "1"], ["370202********1234", "2"]]);

    // Ties on the masked value fall through to the next key: the hidden
    // digits (1985 < 1990) do not influence the order.
    let ordered = f
        .query("SELECT credit_code FROM ent WHERE legal_rep_id LIKE '370202%' ORDER BY legal_rep_id, credit_code DESC")
        .await;
    assert_eq!(ordered, [["91370202BBBBBBBBB2"], ["91370202AAAAAAAAA1"]]);
    let ordered = f
        .query("SELECT credit_code FROM ent WHERE legal_rep_id LIKE '370202%' ORDER BY legal_rep_id, credit_code")
        .await;
    assert_eq!(ordered, [["91370202AAAAAAAAA1"], ["91370202BBBBBBBBB2"]]);
    let window = f.query("SELECT rank() OVER (ORDER BY legal_rep_id) FROM ent ORDER BY credit_code").await;
    assert_eq!(window, [["1"], ["2"], ["2"]]);

    let casted = f.query("SELECT TRY_CAST(legal_rep_id AS BIGINT) FROM ent").await;
    assert!(casted.iter().all(|r| r[0].is_empty()), "{casted:?}");
    let err = f
        .ctx
        .sql("SELECT CAST(legal_rep_id AS BIGINT) FROM ent")
        .await
        .expect("plan")
        .collect()
        .await
        .expect_err("masked ids are not numbers");
    let msg = err.to_string();
    for secret in ["370202199001011234", "19900101", "198502021", "13812345678"] {
        assert!(!msg.contains(secret), "error leaks {secret}: {msg}");
    }
}

#[tokio::test]
async fn subqueries_and_joins_see_masked_values() {
    let f = fixture("credit_agency");
    let sub = f
        .query("SELECT count(*) FROM ent WHERE credit_code IN (SELECT credit_code FROM ent WHERE legal_rep_id = '370202199001011234')")
        .await;
    assert_eq!(sub, [["0"]]);
    let join = f
        .query("SELECT count(*) FROM ent e JOIN (VALUES ('370202199001011234'), ('11010519491231002X')) AS g(id) ON e.legal_rep_id = g.id")
        .await;
    assert_eq!(join, [["0"]]);
    let exists = f
        .query(
            "SELECT count(*) FROM ent WHERE EXISTS (SELECT 1 FROM ent i WHERE i.legal_rep_id = '11010519491231002X')",
        )
        .await;
    assert_eq!(exists, [["0"]]);
}

#[tokio::test]
async fn keyed_hash_pseudonyms_join_across_views() {
    let text = r#"
[[principals]]
name = "ag"
identity = "spiffe://credit.example/org/ag"
organization = "X"
role = "agency"
purposes = ["supervision"]
duty_codes = ["supervision"]

[datasets."a.people"]
columns = { id = "sensitive", city = "public" }
subject_keys = { resident_id = "id" }

[datasets."b.cases"]
columns = { resident_id = "sensitive", case_no = "public" }
subject_keys = { resident_id = "resident_id" }

[[rules]]
role = "agency"
datasets = ["a.people", "b.cases"]
"#;
    let policy = Policy::parse(text, "join.toml").expect("valid");
    let ag = policy.principal("ag").expect("ag");
    let masks = MaskUdfs::new(SECRET).expect("masks");
    let ctx = SessionContext::new();
    let people = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(StringArray::from(vec!["370202199001011234", "11010519491231002X"])) as ArrayRef),
        ("city", Arc::new(StringArray::from(vec!["青岛", "北京"])) as ArrayRef),
    ])
    .expect("people");
    let cases = RecordBatch::try_from_iter(vec![
        ("resident_id", Arc::new(StringArray::from(vec!["11010519491231002X", "999"])) as ArrayRef),
        ("case_no", Arc::new(StringArray::from(vec!["C1", "C2"])) as ArrayRef),
    ])
    .expect("cases");
    for (name, table, batch) in [("people", "a.people", people), ("cases", "b.cases", cases)] {
        let mem = Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("mem"));
        let grant = policy.grant_for(ag, table).expect("grant");
        ctx.register_table(name, secure_view(mem, &grant, &masks).expect("view")).expect("register");
    }
    let joined = rows(&ctx, "SELECT p.id, p.city, c.case_no FROM people p JOIN cases c ON p.id = c.resident_id").await;
    assert_eq!(joined, [[masks.pseudonym("11010519491231002X"), "北京".to_owned(), "C1".to_owned()]]);
    assert_eq!(joined[0][0].len(), 32);
}

#[tokio::test]
async fn row_predicate_applies_filters_and_retention() {
    let grant = grant("public", "market.penalties");
    let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
    let predicate = grant.row_predicate(today).expect("ok").expect("some");
    let day = |y, m, d| {
        let date = NaiveDate::from_ymd_opt(y, m, d).expect("date");
        i32::try_from((date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days()).expect("fits")
    };
    let batch = RecordBatch::try_from_iter(vec![
        ("penalty_id", Arc::new(StringArray::from(vec!["open", "old", "edge", "recent", "hidden"])) as ArrayRef),
        (
            "event_end_date",
            Arc::new(Date32Array::from(vec![
                None,
                Some(day(2021, 11, 27)),
                Some(day(2021, 11, 28)),
                Some(day(2025, 1, 1)),
                Some(day(2025, 1, 1)),
            ])) as ArrayRef,
        ),
        ("is_public", Arc::new(BooleanArray::from(vec![true, true, true, true, false])) as ArrayRef),
    ])
    .expect("batch");
    let ctx = SessionContext::new();
    let df = ctx.read_batch(batch).expect("df").filter(predicate).expect("filter");
    let out = df.collect().await.expect("run");
    let ids: Vec<String> =
        out.iter().flat_map(|b| (0..b.num_rows()).map(|r| array_value_to_string(b.column(0), r).expect("s"))).collect();
    assert_eq!(ids, ["open", "edge", "recent"]);
}

#[tokio::test]
async fn policy_and_source_must_agree() {
    let masks = MaskUdfs::new(SECRET).expect("masks");
    let grant = grant("credit_agency", "market.enterprises");
    // A source missing a granted column.
    let batch = RecordBatch::try_from_iter(vec![("credit_code", Arc::new(StringArray::from(vec!["x"])) as ArrayRef)])
        .expect("batch");
    let mem = Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("mem"));
    let err = secure_view(mem, &grant, &masks).expect_err("mismatch");
    assert!(matches!(err, PolicyError::SourceMismatch { .. }), "{err}");

    // A mask that does not fit the source's type.
    let mut batch = enterprises_batch();
    let mut columns = batch.columns().to_vec();
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    columns[11] = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]));
    fields[11] = Field::new("phone", DataType::Float64, true);
    batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
    let mem = Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("mem"));
    let err = secure_view(mem, &grant, &masks).expect_err("mask type");
    assert_eq!(err.to_string(), "mask mobile cannot be applied to market.enterprises.phone of type Float64");
}
