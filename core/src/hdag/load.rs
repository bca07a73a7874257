//! Phase one: bytes → a generic JSON value, under hard limits.
//!
//! The value is built by our own visitor rather than `serde_json::Value`'s so that every node and
//! every byte of string it produces is counted *while* the YAML deserializer expands aliases: a
//! billion-laughs document stops at the node budget instead of exhausting memory, and nesting stops
//! at the depth limit (which also keeps dropping the value from recursing deeply).

use super::{DescriptorError, Limits};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Which limit stopped the load, recorded beside the (opaque) deserializer error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tripped {
    Depth,
    Nodes,
    Bytes,
}

struct Budget {
    nodes_left: Cell<usize>,
    bytes_left: Cell<usize>,
    max_depth: usize,
    tripped: Cell<Option<Tripped>>,
}

impl Budget {
    fn trip<E: de::Error>(&self, what: Tripped) -> E {
        self.tripped.set(Some(what));
        E::custom(match what {
            Tripped::Depth => "nesting too deep",
            Tripped::Nodes => "too many nodes",
            Tripped::Bytes => "too much string data",
        })
    }

    fn node<E: de::Error>(&self) -> Result<(), E> {
        match self.nodes_left.get().checked_sub(1) {
            Some(left) => {
                self.nodes_left.set(left);
                Ok(())
            }
            None => Err(self.trip(Tripped::Nodes)),
        }
    }

    fn text<E: de::Error>(&self, len: usize) -> Result<(), E> {
        self.node()?;
        match self.bytes_left.get().checked_sub(len) {
            Some(left) => {
                self.bytes_left.set(left);
                Ok(())
            }
            None => Err(self.trip(Tripped::Bytes)),
        }
    }
}

/// Deserializes one node at `depth` (the root is at depth 0).
#[derive(Clone, Copy)]
struct Node<'b> {
    budget: &'b Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Node<'_> {
    fn enter<E: de::Error>(self) -> Result<Self, E> {
        self.budget.node()?;
        if self.depth >= self.budget.max_depth {
            return Err(self.budget.trip(Tripped::Depth));
        }
        Ok(Node {
            budget: self.budget,
            depth: self.depth + 1,
        })
    }
}

fn float(v: f64) -> Value {
    // JSON has no NaN/inf; keep them as text so validation reports them where a number is expected.
    Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number)
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML/JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        self.budget.node()?;
        Ok(float(v as f64))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        self.budget.node()?;
        Ok(float(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.node()?;
        Ok(float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.text(v.len())?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.text(v.len())?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(
            "YAML tags such as !thing are not supported",
        ))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(Key(self.budget))? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Mapping keys: scalars only, turned into strings (`1: x` has key `"1"`).
struct Key<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.0.text(v.len())?;
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        self.0.text(v.len())?;
        Ok(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.0.node()?;
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.0.node()?;
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.0.node()?;
        Ok(v.to_string())
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        self.0.node()?;
        Ok(v.to_string())
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        self.0.node()?;
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.0.node()?;
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.0.node()?;
        Ok("null".to_owned())
    }
    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        self.visit_unit()
    }
}

/// An upper bound on the work libyaml (under serde_norway) does for nested flow collections.
///
/// For every token its scanner walks a stack holding one entry per open `[`/`{`, so deeply nested
/// flow collections cost time quadratic in their depth: a 10 MB `[[[[…` takes hours, all before
/// any depth check can run (the events are collected first). Every `[`/`{` character might open
/// one, except one closed right after it (`[]`, `{ }`), which is popped at the next token; so
/// `(length + 1) × (those characters + 1)` bounds the stack walking, whatever the quoting.
pub(super) fn flow_work(text: &str) -> u64 {
    let b = text.as_bytes();
    let mut opens: u64 = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'[' || c == b'{' {
            let next = b
                .get(i + 1..)
                .unwrap_or_default()
                .iter()
                .find(|&&n| n != b' ' && n != b'\t');
            if !matches!(next, Some(b']' | b'}')) {
                opens += 1;
            }
        }
    }
    (b.len() as u64 + 1).saturating_mul(opens + 1)
}

/// Text that alias expansion may add beyond twice the input.
const ALIAS_TEXT_ALLOWANCE: usize = 16 << 20;

/// serde_norway's own nesting limit, reported when a caller sets `max_depth` above it.
const SERDE_NORWAY_DEPTH: usize = 128;

/// Whether the body is JSON: its first non-blank character opens an object.
fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Loads `bytes` (YAML or JSON) into a value, enforcing `limits`; no validation of the content.
pub(super) fn load(bytes: &[u8], limits: &Limits) -> Result<Value, DescriptorError> {
    if bytes.len() > limits.max_bytes {
        return Err(DescriptorError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DescriptorError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(DescriptorError::Empty);
    }
    let budget = Budget {
        nodes_left: Cell::new(limits.max_nodes),
        // Without aliases, string data cannot exceed about the input size (escapes only shrink or
        // grow it by half); aliases may add a fixed allowance on top (legitimate reuse of anchored
        // blocks), so one long aliased string cannot be repeated without bound.
        bytes_left: Cell::new(
            bytes
                .len()
                .saturating_mul(2)
                .saturating_add(ALIAS_TEXT_ALLOWANCE),
        ),
        max_depth: limits.max_depth,
        tripped: Cell::new(None),
    };
    let root = Node {
        budget: &budget,
        depth: 0,
    };
    let result = if looks_like_json(text) {
        let mut de = serde_json::Deserializer::from_str(text);
        root.deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| syntax(e.line(), e.column(), e.to_string()))
    } else {
        let work = flow_work(text);
        if work > limits.max_flow_work {
            return Err(DescriptorError::TooComplex {
                work,
                limit: limits.max_flow_work,
            });
        }
        root.deserialize(serde_norway::Deserializer::from_str(text))
            .map_err(|e| {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                yaml_error(line, column, e.to_string(), limits)
            })
    };
    match (result, budget.tripped.get()) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some(Tripped::Depth)) => Err(DescriptorError::TooDeep {
            limit: limits.max_depth,
        }),
        (Err(_), Some(Tripped::Nodes | Tripped::Bytes)) => Err(DescriptorError::TooManyNodes {
            limit: limits.max_nodes,
        }),
        (Err(e), None) => Err(e),
    }
}

fn syntax(line: usize, column: usize, message: String) -> DescriptorError {
    // Both parsers append the position the error already carries.
    let message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
    DescriptorError::Syntax {
        line,
        column,
        message,
    }
}

/// serde_norway has limits of its own (recursion 128, alias repetition) that may trip before ours;
/// report them as the same typed errors.
fn yaml_error(line: usize, column: usize, message: String, limits: &Limits) -> DescriptorError {
    if message.contains("repetition limit exceeded") {
        DescriptorError::TooManyNodes {
            limit: limits.max_nodes,
        }
    } else if message.contains("recursion limit exceeded") {
        DescriptorError::TooDeep {
            limit: limits.max_depth.min(SERDE_NORWAY_DEPTH),
        }
    } else {
        syntax(line, column, message)
    }
}
