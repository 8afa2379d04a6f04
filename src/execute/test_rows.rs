//! What the tests of our aggregate functions share: a row generator and a
//! query printed as text, to compare ours with DataFusion's.

use datafusion::prelude::SessionContext;

/// A small deterministic generator: the tests need spread, not quality.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// The result of `sql` on `ctx`, as a printed table.
pub async fn printed(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string()
}
