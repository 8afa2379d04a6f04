//! The seven output tables: their schemas and the Arrow builders rows are
//! appended to before a row group is written.
//!
//! Every field is nullable: the bad rows put nulls in columns the contract
//! requires, exactly as a careless source would.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// A column builder whose Arrow type is fixed.
pub(crate) trait Column: ArrayBuilder {
    fn data_type() -> DataType;
    fn with_rows(rows: usize) -> Self;
    fn finish_array(&mut self) -> ArrayRef;
}

impl Column for StringBuilder {
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn with_rows(rows: usize) -> Self {
        StringBuilder::with_capacity(rows, rows * 8)
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

impl Column for Date32Builder {
    fn data_type() -> DataType {
        DataType::Date32
    }
    fn with_rows(rows: usize) -> Self {
        Date32Builder::with_capacity(rows)
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

impl Column for Float64Builder {
    fn data_type() -> DataType {
        DataType::Float64
    }
    fn with_rows(rows: usize) -> Self {
        Float64Builder::with_capacity(rows)
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

impl Column for Int64Builder {
    fn data_type() -> DataType {
        DataType::Int64
    }
    fn with_rows(rows: usize) -> Self {
        Int64Builder::with_capacity(rows)
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

/// Timestamps are microseconds in UTC.
pub(crate) type TsBuilder = TimestampMicrosecondBuilder;

impl Column for TsBuilder {
    fn data_type() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }
    fn with_rows(rows: usize) -> Self {
        TimestampMicrosecondBuilder::with_capacity(rows)
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish().with_timezone("UTC"))
    }
}

/// The buffered rows of one table.
pub(crate) trait RowBuffer {
    /// Folder name of the table under the output folder.
    const TABLE: &'static str;
    fn schema() -> SchemaRef;
    fn with_rows(rows: usize) -> Self;
    /// Rows buffered since the last `finish`.
    fn len(&self) -> usize;
    /// The buffered columns, in schema order; empties the buffer.
    fn finish(&mut self) -> Vec<ArrayRef>;
}

macro_rules! row_buffer {
    ($name:ident, $table:literal, $first:ident: $first_ty:ty $(, $field:ident: $ty:ty)* $(,)?) => {
        pub(crate) struct $name {
            pub $first: $first_ty,
            $(pub $field: $ty,)*
        }

        impl RowBuffer for $name {
            const TABLE: &'static str = $table;

            fn schema() -> SchemaRef {
                Arc::new(Schema::new(vec![
                    Field::new(stringify!($first), <$first_ty as Column>::data_type(), true),
                    $(Field::new(stringify!($field), <$ty as Column>::data_type(), true),)*
                ]))
            }

            fn with_rows(rows: usize) -> Self {
                $name {
                    $first: <$first_ty as Column>::with_rows(rows),
                    $($field: <$ty as Column>::with_rows(rows),)*
                }
            }

            fn len(&self) -> usize {
                ArrayBuilder::len(&self.$first)
            }

            fn finish(&mut self) -> Vec<ArrayRef> {
                vec![self.$first.finish_array() $(, self.$field.finish_array())*]
            }
        }
    };
}

row_buffer!(
    Customers,
    "customers",
    customer_id: StringBuilder,
    signup_date: Date32Builder,
    segment: StringBuilder,
    region: StringBuilder,
);

row_buffer!(
    Subscriptions,
    "subscriptions",
    subscription_id: StringBuilder,
    customer_id: StringBuilder,
    plan: StringBuilder,
    start_date: Date32Builder,
    end_date: Date32Builder,
    mrr: Float64Builder,
    amount: Float64Builder,
    billing_period: StringBuilder,
    quantity: Int64Builder,
    currency: StringBuilder,
);

row_buffer!(
    Usage,
    "usage",
    customer_id: StringBuilder,
    occurred_at: TsBuilder,
    user_id: StringBuilder,
    feature: StringBuilder,
    quantity: Int64Builder,
);

row_buffer!(
    Tickets,
    "tickets",
    ticket_id: StringBuilder,
    customer_id: StringBuilder,
    created_at: TsBuilder,
    resolved_at: TsBuilder,
    priority: StringBuilder,
    category: StringBuilder,
);

row_buffer!(
    Surveys,
    "surveys",
    response_id: StringBuilder,
    customer_id: StringBuilder,
    responded_at: TsBuilder,
    survey: StringBuilder,
    score: Float64Builder,
);

row_buffer!(
    AcquisitionSpend,
    "acquisition_spend",
    month: Date32Builder,
    segment: StringBuilder,
    amount: Float64Builder,
);

row_buffer!(
    FxRates,
    "fx_rates",
    currency: StringBuilder,
    month: Date32Builder,
    rate: Float64Builder,
);
