//! Reading the few Parquet columns the sources need (LeRobot `meta/`, manifests), by name, with
//! numeric types cast so that an int32 column or a float32 column reads as well as int64/float64.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// All record batches of a Parquet file. A corrupt file that makes the Parquet or Arrow reader
/// panic is an error like any other.
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, String> {
    no_panic(|| read_parquet_inner(path)).map_err(|why| why.unwrap_or_else(|e| e))
}

/// Runs `f`, a read of a Parquet file: `Ok` with its value, `Err(Ok(reason))` when the Parquet
/// or Arrow reader panicked (a corrupt file can make them, e.g. with a malformed embedded Arrow
/// schema), `Err(Err(e))` for `f`'s own error. Shared by every Parquet reader of r3m.
pub fn no_panic<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<T, Result<String, E>> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Err),
        Err(e) => Err(Ok(format!("a corrupt Parquet file (the reader failed: {})", panic_message(e.as_ref())))),
    }
}

/// The message a panic carried (`panic!` with a string or a format), or "unknown".
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn read_parquet_inner(path: &Path) -> Result<Vec<RecordBatch>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| format!("not a Parquet file ({e})"))?
        .build()
        .map_err(|e| e.to_string())?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| format!("unreadable Parquet ({e})"))
}

fn column(batch: &RecordBatch, name: &str) -> Option<ArrayRef> {
    batch.column_by_name(name).cloned()
}

fn cast(a: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef, String> {
    arrow::compute::cast(a, to).map_err(|e| format!("column '{name}' ({}) is not {to}: {e}", a.data_type()))
}

/// Column `name` as f64 values (nulls as `None`); `Ok(None)` when the column is absent.
pub fn f64s(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Option<f64>>>, String> {
    let Some(a) = column(batch, name) else { return Ok(None) };
    let a = cast(&a, &DataType::Float64, name)?;
    let a = a.as_primitive::<Float64Type>();
    Ok(Some((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect()))
}

/// Column `name` as i64 values (nulls as `None`); `Ok(None)` when the column is absent.
pub fn i64s(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Option<i64>>>, String> {
    let Some(a) = column(batch, name) else { return Ok(None) };
    let a = cast(&a, &DataType::Int64, name)?;
    let a = a.as_primitive::<Int64Type>();
    Ok(Some((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect()))
}

/// Column `name` as strings (nulls as `None`); `Ok(None)` when the column is absent.
pub fn strings(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Option<String>>>, String> {
    let Some(a) = column(batch, name) else { return Ok(None) };
    let a = cast(&a, &DataType::Utf8, name)?;
    let a = a.as_string::<i32>();
    Ok(Some((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_string())).collect()))
}

/// Column `name` as lists of strings (LeRobot's `tasks`); a plain string column reads as one-item
/// lists. `Ok(None)` when the column is absent.
pub fn string_lists(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Vec<String>>>, String> {
    let Some(a) = column(batch, name) else { return Ok(None) };
    let list = match a.data_type() {
        DataType::List(_) | DataType::LargeList(_) => {
            cast(&a, &DataType::List(Arc::new(arrow::datatypes::Field::new("item", DataType::Utf8, true))), name)?
        }
        _ => return Ok(strings(batch, name)?.map(|v| v.into_iter().map(|s| s.into_iter().collect()).collect())),
    };
    let list = list.as_list::<i32>();
    let mut out = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        if list.is_null(i) {
            out.push(Vec::new());
            continue;
        }
        let v = list.value(i);
        let s = v.as_string::<i32>();
        out.push((0..s.len()).filter(|&j| s.is_valid(j)).map(|j| s.value(j).to_string()).collect());
    }
    Ok(Some(out))
}

/// Column `name` of fixed-size (or variable) lists of numbers as `Vec<f32>` rows; `Ok(None)` when
/// the column is absent. (LeRobot's `observation.state` and `action`.)
pub fn f32_lists(batch: &RecordBatch, name: &str) -> Result<Option<Vec<Vec<f32>>>, String> {
    let Some(a) = column(batch, name) else { return Ok(None) };
    let (values, offsets): (ArrayRef, Vec<(usize, usize)>) = match a.data_type() {
        DataType::FixedSizeList(_, n) => {
            let l = a.as_fixed_size_list();
            let n = *n as usize;
            (l.values().clone(), (0..l.len()).map(|i| ((l.offset() + i) * n, n)).collect())
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let o = l.value_offsets();
            (l.values().clone(), (0..l.len()).map(|i| (o[i] as usize, (o[i + 1] - o[i]) as usize)).collect())
        }
        other => return Err(format!("column '{name}' is {other}, not a list of numbers")),
    };
    let values = cast(&values, &DataType::Float64, name)?;
    let v = values.as_primitive::<Float64Type>();
    Ok(Some(offsets.into_iter().map(|(s, n)| (s..s + n).map(|j| v.value(j) as f32).collect()).collect()))
}
