//! The input contract of ../shared/spec/inputs.md as data: which tables the
//! engine knows by name, their canonical columns and the lenient type class
//! each column is coerced to. Sources that are not listed here are read as
//! they are.

/// The type class a canonical column is coerced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnClass {
    /// Strings; integers are accepted and printed (ids are often numbers).
    Text,
    /// Any integer, decimal or float, read as DOUBLE.
    Number,
    /// DATE, TIMESTAMP (cut to the day in the catalog's time zone) or an
    /// ISO-8601 string.
    Date,
    /// TIMESTAMP (UTC), DATE or an ISO-8601 string.
    Timestamp,
}

impl ColumnClass {
    pub fn describe(self) -> &'static str {
        match self {
            ColumnClass::Text => "a string",
            ColumnClass::Number => "a number (integer, decimal or float)",
            ColumnClass::Date => "a date (DATE, TIMESTAMP or ISO-8601 string)",
            ColumnClass::Timestamp => "a timestamp (TIMESTAMP, DATE or ISO-8601 string)",
        }
    }
}

#[derive(Debug)]
pub struct ColumnContract {
    pub name: &'static str,
    pub class: ColumnClass,
    /// The column must exist in every file of the table.
    pub required: bool,
}

#[derive(Debug)]
pub struct TableContract {
    pub name: &'static str,
    /// A build cannot run without this table.
    pub required: bool,
    pub columns: &'static [ColumnContract],
    /// At least one of these groups of columns must all be present.
    pub one_of: &'static [&'static [&'static str]],
    /// Whether columns beyond the contract are kept (as dimensions).
    pub keeps_extra_columns: bool,
}

impl TableContract {
    pub fn column(&self, name: &str) -> Option<&ColumnContract> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const fn col(name: &'static str, class: ColumnClass, required: bool) -> ColumnContract {
    ColumnContract {
        name,
        class,
        required,
    }
}

use ColumnClass::*;

pub static CONTRACTS: &[TableContract] = &[
    TableContract {
        name: "subscriptions",
        required: true,
        columns: &[
            col("subscription_id", Text, true),
            col("customer_id", Text, true),
            col("plan", Text, false),
            col("start_date", Date, true),
            col("end_date", Date, false),
            col("mrr", Number, false),
            col("amount", Number, false),
            col("billing_period", Text, false),
            col("quantity", Number, false),
            col("currency", Text, false),
        ],
        one_of: &[&["mrr"], &["amount", "billing_period"]],
        keeps_extra_columns: false,
    },
    TableContract {
        name: "customers",
        required: false,
        columns: &[
            col("customer_id", Text, true),
            col("signup_date", Date, false),
            col("segment", Text, false),
        ],
        one_of: &[],
        keeps_extra_columns: true,
    },
    TableContract {
        name: "usage",
        required: false,
        columns: &[
            col("customer_id", Text, true),
            col("occurred_at", Timestamp, true),
            col("user_id", Text, false),
            col("feature", Text, false),
            col("quantity", Number, false),
        ],
        one_of: &[],
        keeps_extra_columns: false,
    },
    TableContract {
        name: "tickets",
        required: false,
        columns: &[
            col("ticket_id", Text, true),
            col("customer_id", Text, true),
            col("created_at", Timestamp, true),
            col("resolved_at", Timestamp, false),
            col("priority", Text, false),
            col("category", Text, false),
        ],
        one_of: &[],
        keeps_extra_columns: false,
    },
    TableContract {
        name: "surveys",
        required: false,
        columns: &[
            col("response_id", Text, true),
            col("customer_id", Text, true),
            col("responded_at", Timestamp, true),
            col("survey", Text, true),
            col("score", Number, true),
        ],
        one_of: &[],
        keeps_extra_columns: false,
    },
    TableContract {
        name: "acquisition_spend",
        required: false,
        columns: &[
            col("month", Date, true),
            col("segment", Text, false),
            col("amount", Number, true),
        ],
        one_of: &[],
        keeps_extra_columns: false,
    },
    TableContract {
        name: "fx_rates",
        required: false,
        columns: &[
            col("currency", Text, true),
            col("month", Date, true),
            col("rate", Number, true),
        ],
        one_of: &[],
        keeps_extra_columns: false,
    },
];

pub fn contract(table: &str) -> Option<&'static TableContract> {
    CONTRACTS.iter().find(|c| c.name == table)
}
