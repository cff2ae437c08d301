//! JSON Schemas cut to what Gemini accepts (tool `parameters` as `parametersJsonSchema`,
//! `json_schema` response formats as `responseJsonSchema`).
//!
//! Gemini documents a fixed keyword list for its JSON Schema fields; anything else is ignored
//! at best and a 400 at worst, and older models and Vertex reject `$ref`, `const` or exclusive
//! bounds outright. So every schema leaves in that list's terms:
//!
//! - kept: `type` (arrays with `"null"` included), `title`, `description`, `enum`,
//!   `required`, `properties`, `additionalProperties`, `items`, `prefixItems`, `minItems`,
//!   `maxItems`, `minimum`, `maximum`, `anyOf`, `propertyOrdering`, `default` (Google keeps it
//!   in its own schema type precisely so that it is never an unknown field), and the
//!   `format`s Gemini knows;
//! - rewritten: `$ref` into `$defs`/`definitions` and one-schema `allOf` are inlined,
//!   `oneOf` becomes `anyOf`, a string or number `const` a one-value `enum`,
//!   `exclusiveMinimum`/`exclusiveMaximum` the inclusive bound (plus one for integers);
//! - refused with a 400 naming the schema path: what changes the accepted shape and has no
//!   Gemini form (`not`, `if`/`then`/`else`, `dependentSchemas`, `patternProperties`,
//!   several-schema `allOf`, recursive or non-local `$ref`, a `const` that is not a string or
//!   number, a `false` schema);
//! - dropped: annotations and validation hints Gemini would not enforce (`$schema`, `$id`,
//!   `examples`, `pattern`, `minLength`, `multipleOf`, `uniqueItems`, unknown `x-` keys,
//!   ...).
//!
//! A schema that already fits is forwarded as the client's own bytes: one scan that allocates
//! nothing decides (and checks the root's `type` on the way), and only the objects on the way
//! to a keyword that needs a change are rebuilt, subtrees that fit staying the client's bytes
//! (keys keep their order, since Gemini answers in the schema's property order). Paths are
//! written out only for an error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::bad;
use crate::error::ApiError;

/// Which schemas Gemini takes where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Root {
    /// Any schema (`responseJsonSchema`).
    Any,
    /// An object schema: Gemini passes function arguments as an object.
    Object,
}

/// `schema` in the terms Gemini accepts: borrowed when it needs no change. `param` names the
/// schema in errors (`tools[0].function.parameters`).
pub(super) fn for_gemini<'a>(
    schema: &'a RawValue,
    param: &str,
    root: Root,
) -> Result<Cow<'a, RawValue>, ApiError> {
    let mut de = serde_json::Deserializer::from_str(schema.get());
    // One walk both checks the root's type and decides whether anything needs a change.
    if let Ok(kind) = de.deserialize_map(SchemaScan { bool_ok: false }) {
        check_root(kind, param, root)?;
        return Ok(Cow::Borrowed(schema));
    }
    let Some(entries) = entries(schema) else {
        return Err(bad(
            param,
            format!("'{param}' must be a JSON Schema object."),
        ));
    };
    let kind = entries.iter().find(|(k, _)| k == "type").map(|(_, v)| *v);
    check_root(kind, param, root)?;
    let path = Path::Root(param);
    let mut converter = Converter::new(schema, &path)?;
    let out = converter.rebuild(schema, &path)?;
    let raw = serde_json::value::to_raw_value(&out)
        .map_err(|e| ApiError::Internal(format!("could not serialise a Gemini schema: {e}")))?;
    Ok(Cow::Owned(raw))
}

/// What happens to one keyword of a schema object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// Sent as is.
    Keep,
    /// Sent when its value is a format Gemini knows, dropped otherwise.
    Format,
    /// A map of property names to schemas (`properties`).
    SchemaMap,
    /// One schema (`items`).
    Schema,
    /// A schema or a boolean (`additionalProperties`).
    SchemaOrBool,
    /// A list of schemas (`anyOf`, `prefixItems`).
    SchemaList,
    /// Rewritten into kept keywords.
    Rewrite,
    /// Left out: Gemini would not enforce it.
    Drop,
    /// No Gemini form; the request is refused.
    Refuse,
}

/// The rule for `keyword`.
fn rule(keyword: &str) -> Rule {
    match keyword {
        "type" | "title" | "description" | "enum" | "required" | "minItems" | "maxItems"
        | "minimum" | "maximum" | "propertyOrdering" | "default" => Rule::Keep,
        "format" => Rule::Format,
        "properties" => Rule::SchemaMap,
        "items" => Rule::Schema,
        "additionalProperties" => Rule::SchemaOrBool,
        "anyOf" | "prefixItems" => Rule::SchemaList,
        "$ref" | "allOf" | "oneOf" | "const" | "exclusiveMinimum" | "exclusiveMaximum" => {
            Rule::Rewrite
        }
        "not" | "if" | "then" | "else" | "dependentSchemas" | "dependencies"
        | "patternProperties" | "$dynamicRef" | "$recursiveRef" => Rule::Refuse,
        _ => Rule::Drop,
    }
}

/// A 400 when the root must describe an object and its `type` (`kind`) says otherwise.
fn check_root(kind: Option<&RawValue>, param: &str, root: Root) -> Result<(), ApiError> {
    match (root, kind.map(RawValue::get)) {
        (Root::Any, _) | (Root::Object, None | Some("\"object\"")) => Ok(()),
        (Root::Object, Some(other)) => Err(bad(
            param,
            format!(
                "'{param}' must describe an object (\"type\": \"object\"), not {other}: Gemini \
                 passes function arguments as an object."
            ),
        )),
    }
}

/// The `format` values Gemini documents; others are hints it does not know.
fn known_format(format: &str) -> bool {
    matches!(
        format,
        "date-time" | "date" | "time" | "enum" | "int32" | "int64" | "float" | "double"
    )
}

// === The scan: does the schema fit as it is? ===

/// Whether `schema` fits Gemini unchanged. Any doubt (an escaped key, a keyword to rewrite,
/// something malformed) says no, and the rebuild decides.
fn fits(schema: &RawValue) -> bool {
    let mut de = serde_json::Deserializer::from_str(schema.get());
    Scan(Shape::Schema).deserialize(&mut de).is_ok()
}

/// What the scanned value should be.
#[derive(Clone, Copy)]
enum Shape {
    /// A schema object.
    Schema,
    /// A schema object or a boolean.
    SchemaOrBool,
    /// An object whose values are schemas.
    SchemaMap,
    /// An array of schemas.
    SchemaList,
}

/// Scans one value of the given shape; an error means "rebuild".
struct Scan(Shape);

impl<'de> DeserializeSeed<'de> for Scan {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.0 {
            Shape::Schema => deserializer
                .deserialize_map(SchemaScan { bool_ok: false })
                .map(drop),
            Shape::SchemaOrBool => deserializer
                .deserialize_any(SchemaScan { bool_ok: true })
                .map(drop),
            Shape::SchemaMap => deserializer.deserialize_map(MapScan),
            Shape::SchemaList => deserializer.deserialize_seq(ListScan),
        }
    }
}

/// The error that sends a schema to the rebuild.
fn rebuild<E: de::Error>() -> E {
    E::custom("needs a rebuild")
}

/// Scans a schema object's keywords; its value is the object's `type`, when it has one.
struct SchemaScan {
    /// Whether `true`/`false` is fine here.
    bool_ok: bool,
}

impl<'de> Visitor<'de> for SchemaScan {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON Schema object")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        if self.bool_ok {
            Ok(None)
        } else {
            Err(rebuild())
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind = None;
        while let Some(keyword) = map.next_key::<&'de str>()? {
            match rule(keyword) {
                Rule::Keep if keyword == "type" => kind = Some(map.next_value::<&'de RawValue>()?),
                Rule::Keep => {
                    map.next_value::<IgnoredAny>()?;
                }
                Rule::Format => {
                    if !known_format(map.next_value::<&'de str>()?) {
                        return Err(rebuild());
                    }
                }
                Rule::SchemaMap => map.next_value_seed(Scan(Shape::SchemaMap))?,
                Rule::Schema => map.next_value_seed(Scan(Shape::Schema))?,
                Rule::SchemaOrBool => map.next_value_seed(Scan(Shape::SchemaOrBool))?,
                Rule::SchemaList => map.next_value_seed(Scan(Shape::SchemaList))?,
                Rule::Rewrite | Rule::Drop | Rule::Refuse => return Err(rebuild()),
            }
        }
        Ok(kind)
    }
}

/// Scans `properties`: any names, schema values.
struct MapScan;

impl<'de> Visitor<'de> for MapScan {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of schemas")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Scan(Shape::Schema))?;
        }
        Ok(())
    }
}

/// Scans a list of schemas.
struct ListScan;

impl<'de> Visitor<'de> for ListScan {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of schemas")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Scan(Shape::Schema))?.is_some() {}
        Ok(())
    }
}

// === The rebuild ===

/// A rebuilt schema: the client's bytes where they stay, new objects and arrays where they
/// change, in the client's key order.
#[derive(Debug)]
enum Out<'a> {
    /// A value sent as the client wrote it.
    Raw(&'a RawValue),
    /// A value the rebuild computed.
    Owned(Box<RawValue>),
    /// An object, keys in order.
    Object(Vec<(Cow<'a, str>, Out<'a>)>),
    /// An array.
    Array(Vec<Out<'a>>),
}

impl Serialize for Out<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Raw(raw) => raw.serialize(serializer),
            Out::Owned(raw) => raw.serialize(serializer),
            Out::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            Out::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
        }
    }
}

/// A schema object's entries, in order.
type Entries<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// An object key, borrowed unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// An object's entries in order; `None` when `raw` is not an object.
fn entries(raw: &RawValue) -> Option<Entries<'_>> {
    struct EntriesVisitor;
    impl<'de> Visitor<'de> for EntriesVisitor {
        type Value = Entries<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
            let mut out = Vec::new();
            while let Some(Key(key)) = map.next_key()? {
                out.push((key, map.next_value::<&'de RawValue>()?));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_map(EntriesVisitor).ok()
}

/// The most schema nodes inlining may produce: `$ref`s that each point twice at the next
/// definition would otherwise grow a small request into gigabytes.
const MAX_NODES: usize = 10_000;

/// Rebuild state for one schema.
struct Converter<'a> {
    /// The root's `$defs` and `definitions`, by name.
    definitions: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// Definitions being inlined, outermost first: a name seen again is a recursion.
    expanding: Vec<Cow<'a, str>>,
    /// Schema nodes produced so far.
    nodes: usize,
}

/// Where a schema node is, built on the stack and written out only for an error
/// (`tools[0].function.parameters.properties.x.items`).
#[derive(Clone, Copy)]
enum Path<'p> {
    /// The schema itself, named as the request names it.
    Root(&'p str),
    /// `.key` under a parent.
    Key(&'p Path<'p>, &'p str),
    /// `[i]` under a parent.
    Index(&'p Path<'p>, usize),
}

impl<'p> Path<'p> {
    /// `self.key`.
    fn key(&'p self, key: &'p str) -> Self {
        Path::Key(self, key)
    }

    /// `self[i]`.
    fn index(&'p self, i: usize) -> Self {
        Path::Index(self, i)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// A 400 for the schema at `path`.
fn refuse(path: &Path<'_>, why: &str) -> ApiError {
    let path = path.to_string();
    let message = format!("'{path}': {why} Gemini has no form for it; simplify the schema.");
    bad(path, message)
}

impl<'a> Converter<'a> {
    /// State for `root`, its definitions collected.
    fn new(root: &'a RawValue, path: &Path<'_>) -> Result<Self, ApiError> {
        let mut definitions = Vec::new();
        for (key, value) in entries(root).unwrap_or_default() {
            if key == "$defs" || key == "definitions" {
                let defs = entries(value).ok_or_else(|| {
                    refuse(&path.key(&key), "this must be an object of schemas, and")
                })?;
                definitions.extend(defs);
            }
        }
        Ok(Self {
            definitions,
            expanding: Vec::new(),
            nodes: 0,
        })
    }

    /// One schema: the client's bytes when the subtree fits, else rebuilt.
    fn schema(&mut self, raw: &'a RawValue, path: &Path<'_>) -> Result<Out<'a>, ApiError> {
        if fits(raw) {
            return Ok(Out::Raw(raw));
        }
        self.rebuild(raw, path)
    }

    /// One schema that needs a change, rebuilt keyword by keyword.
    fn rebuild(&mut self, raw: &'a RawValue, path: &Path<'_>) -> Result<Out<'a>, ApiError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(refuse(
                path,
                &format!(
                    "the schema grows beyond {MAX_NODES} nodes once its '$ref's are inlined, and"
                ),
            ));
        }
        match raw.get() {
            // `true` accepts anything: the empty schema says the same.
            "true" => return Ok(Out::Object(Vec::new())),
            "false" => {
                return Err(refuse(
                    path,
                    "a 'false' schema (nothing is valid) is refused:",
                ));
            }
            _ => {}
        }
        let Some(entries) = entries(raw) else {
            let path = path.to_string();
            let message = format!("'{path}' must be a JSON Schema object.");
            return Err(bad(path, message));
        };
        let integer = entries
            .iter()
            .any(|(k, v)| k == "type" && v.get() == "\"integer\"");
        let mut base: Option<Out<'a>> = None;
        let mut out: Vec<(Cow<'a, str>, Out<'a>)> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let here = path.key(&key);
            match rule(&key) {
                Rule::Keep => set(&mut out, key, Out::Raw(value)),
                Rule::Format => {
                    let known = serde_json::from_str::<&str>(value.get()).is_ok_and(known_format);
                    if known {
                        set(&mut out, key, Out::Raw(value));
                    }
                }
                Rule::SchemaMap => {
                    let properties = self.properties(value, &here)?;
                    set(&mut out, key, properties);
                }
                Rule::Schema => {
                    if let Some((name, items)) = self.items(value, &here)? {
                        set(&mut out, Cow::Borrowed(name), items);
                    }
                }
                Rule::SchemaOrBool => {
                    let value = match value.get() {
                        "true" | "false" => Out::Raw(value),
                        _ => self.schema(value, &here)?,
                    };
                    set(&mut out, key, value);
                }
                Rule::SchemaList => {
                    let list = self.list(value, &here)?;
                    set(&mut out, key, list);
                }
                Rule::Rewrite => self.rewrite(&key, value, &here, integer, &mut out, &mut base)?,
                Rule::Drop => {}
                Rule::Refuse => {
                    return Err(refuse(
                        &here,
                        &format!("'{key}' changes what is valid, and"),
                    ));
                }
            }
        }
        Ok(match base {
            Some(base) => merge(base, out),
            None => Out::Object(out),
        })
    }

    /// `properties`: each value a schema.
    fn properties(&mut self, raw: &'a RawValue, path: &Path<'_>) -> Result<Out<'a>, ApiError> {
        let entries =
            entries(raw).ok_or_else(|| refuse(path, "this must be an object of schemas, and"))?;
        let mut out = Vec::with_capacity(entries.len());
        for (name, value) in entries {
            let schema = self.schema(value, &path.key(&name))?;
            out.push((name, schema));
        }
        Ok(Out::Object(out))
    }

    /// A list of schemas.
    fn list(&mut self, raw: &'a RawValue, path: &Path<'_>) -> Result<Out<'a>, ApiError> {
        let items: Vec<&'a RawValue> = serde_json::from_str(raw.get())
            .map_err(|_| refuse(path, "this must be an array of schemas, and"))?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            out.push(self.schema(item, &path.index(i))?);
        }
        Ok(Out::Array(out))
    }

    /// `items` (at `path`): a schema stays `items`, an array (the old tuple form) becomes
    /// `prefixItems`, and a boolean goes (`true` says nothing; `false` after `prefixItems`
    /// bounds the length, which Gemini cannot say).
    fn items(
        &mut self,
        raw: &'a RawValue,
        path: &Path<'_>,
    ) -> Result<Option<(&'static str, Out<'a>)>, ApiError> {
        match raw.get().trim_start().as_bytes().first() {
            Some(b't' | b'f') => Ok(None),
            Some(b'[') => Ok(Some(("prefixItems", self.list(raw, path)?))),
            _ => Ok(Some(("items", self.schema(raw, path)?))),
        }
    }

    /// The keywords with a Gemini form of their own; `here` is the keyword's path.
    fn rewrite(
        &mut self,
        key: &str,
        value: &'a RawValue,
        here: &Path<'_>,
        integer: bool,
        out: &mut Vec<(Cow<'a, str>, Out<'a>)>,
        base: &mut Option<Out<'a>>,
    ) -> Result<(), ApiError> {
        match key {
            "$ref" => *base = Some(self.reference(value, here)?),
            "allOf" => {
                let schemas: Vec<&'a RawValue> = serde_json::from_str(value.get())
                    .map_err(|_| refuse(here, "this must be an array of schemas, and"))?;
                let [only] = schemas.as_slice() else {
                    return Err(refuse(
                        here,
                        "an 'allOf' of several schemas (an intersection) is refused:",
                    ));
                };
                *base = Some(self.schema(only, &here.index(0))?);
            }
            "oneOf" => {
                let list = self.list(value, here)?;
                set(out, Cow::Borrowed("anyOf"), list);
            }
            "const" => {
                if !matches!(
                    value.get().as_bytes().first(),
                    Some(b'"' | b'-' | b'0'..=b'9')
                ) {
                    return Err(refuse(
                        here,
                        "a 'const' that is not a string or a number cannot be enumerated, and",
                    ));
                }
                set(
                    out,
                    Cow::Borrowed("enum"),
                    Out::Array(vec![Out::Raw(value)]),
                );
            }
            "exclusiveMinimum" | "exclusiveMaximum" => {
                // Draft 4 spelled these as booleans beside minimum/maximum: the bound stays.
                let Ok(bound) = value.get().parse::<f64>() else {
                    return Ok(());
                };
                let lower = key == "exclusiveMinimum";
                let step = if integer && bound.fract() == 0.0 {
                    1.0
                } else {
                    0.0
                };
                let inclusive = if lower { bound + step } else { bound - step };
                let name = if lower { "minimum" } else { "maximum" };
                let tighter = match find(out, name).and_then(number) {
                    Some(old) if lower => inclusive.max(old),
                    Some(old) => inclusive.min(old),
                    None => inclusive,
                };
                set(
                    out,
                    Cow::Borrowed(name),
                    Out::Owned(number_json(tighter, here)?),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// The definition `value` (a `$ref` at `path`) points at, inlined.
    fn reference(&mut self, value: &'a RawValue, path: &Path<'_>) -> Result<Out<'a>, ApiError> {
        let target: Cow<'a, str> = serde_json::from_str(value.get())
            .map_err(|_| refuse(path, "a '$ref' must be a string, and"))?;
        let name = target
            .strip_prefix("#/$defs/")
            .or_else(|| target.strip_prefix("#/definitions/"))
            .filter(|name| !name.contains('/'))
            .map(|name| name.replace("~1", "/").replace("~0", "~"));
        let Some(name) = name else {
            return Err(refuse(
                path,
                &format!(
                    "{target:?} is not a reference into the schema's own '$defs' or \
                     'definitions' (the only ones that can be inlined), and"
                ),
            ));
        };
        if self.expanding.iter().any(|n| *n == name) {
            return Err(refuse(
                path,
                &format!(
                    "{target:?} refers to itself (a recursive schema), which cannot be inlined, and"
                ),
            ));
        }
        let Some(definition) = self
            .definitions
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
        else {
            return Err(refuse(
                path,
                &format!("{target:?} names no definition, and"),
            ));
        };
        self.expanding.push(Cow::Owned(name));
        let inlined = self.schema(definition, path);
        self.expanding.pop();
        inlined
    }
}

/// Sets `key` in `out`, replacing an earlier value.
fn set<'a>(out: &mut Vec<(Cow<'a, str>, Out<'a>)>, key: Cow<'a, str>, value: Out<'a>) {
    match out.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => out.push((key, value)),
    }
}

/// The value of `key` in `out`.
fn find<'o, 'a>(out: &'o [(Cow<'a, str>, Out<'a>)], key: &str) -> Option<&'o Out<'a>> {
    out.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// A number value, when it is one.
fn number(value: &Out<'_>) -> Option<f64> {
    match value {
        Out::Raw(raw) => raw.get().parse().ok(),
        Out::Owned(raw) => raw.get().parse().ok(),
        Out::Object(_) | Out::Array(_) => None,
    }
}

/// `n` as JSON: an integer when it is one.
fn number_json(n: f64, path: &Path<'_>) -> Result<Box<RawValue>, ApiError> {
    // 2^53: beyond it f64 no longer holds every integer.
    let text = if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        format!("{}", n as i64)
    } else {
        serde_json::to_string(&n)
            .map_err(|_| refuse(path, "this bound is not a finite number, and"))?
    };
    RawValue::from_string(text).map_err(|_| refuse(path, "this bound is not a finite number, and"))
}

/// A `$ref` or `allOf` target with the referring node's own keywords laid over it (its
/// `description` wins over the definition's).
fn merge<'a>(base: Out<'a>, over: Vec<(Cow<'a, str>, Out<'a>)>) -> Out<'a> {
    if over.is_empty() {
        return base;
    }
    let mut merged = match base {
        Out::Object(entries) => entries,
        Out::Raw(raw) => entries(raw)
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, Out::Raw(value)))
            .collect(),
        Out::Owned(_) | Out::Array(_) => return base,
    };
    for (key, value) in over {
        set(&mut merged, key, value);
    }
    Out::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(schema: &str) -> Result<String, ApiError> {
        let raw: Box<RawValue> = serde_json::from_str(schema).unwrap();
        for_gemini(&raw, "p", Root::Any).map(|c| c.get().to_owned())
    }

    fn param_of(schema: &str) -> String {
        match convert(schema) {
            Err(ApiError::BadRequest { param, .. }) => param.unwrap(),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_schema_that_fits_is_borrowed_unchanged() {
        let schema = r##"{"type":"object","title":"T","properties":{"city":{"type":"string","description":"d","enum":["a"]},"n":{"type":["integer","null"],"minimum":1,"maximum":9},"when":{"type":"string","format":"date-time"},"tags":{"type":"array","items":{"type":"string"},"minItems":1},"pair":{"type":"array","prefixItems":[{"type":"string"},{"type":"number"}]},"either":{"anyOf":[{"type":"string"},{"type":"null"}]}},"required":["city"],"additionalProperties":false,"propertyOrdering":["city"]}"##;
        let raw: Box<RawValue> = serde_json::from_str(schema).unwrap();
        let out = for_gemini(&raw, "p", Root::Object).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(out.get(), schema);
    }

    /// The conversion table: each keyword in, what Gemini gets.
    #[test]
    fn each_keyword_in_and_out() {
        let table = [
            (
                r##"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}"##,
                r##"{"type":"object"}"##,
            ),
            (r##"{"$id":"x","type":"object"}"##, r##"{"type":"object"}"##),
            (
                r##"{"type":"object","additionalProperties":false}"##,
                r##"{"type":"object","additionalProperties":false}"##,
            ),
            (
                r##"{"type":"object","additionalProperties":{"type":"integer","examples":[1]}}"##,
                r##"{"type":"object","additionalProperties":{"type":"integer"}}"##,
            ),
            (
                r##"{"type":"string","const":"on"}"##,
                r##"{"type":"string","enum":["on"]}"##,
            ),
            (
                r##"{"type":"number","const":2.5}"##,
                r##"{"type":"number","enum":[2.5]}"##,
            ),
            (
                r##"{"type":"integer","exclusiveMinimum":0}"##,
                r##"{"type":"integer","minimum":1}"##,
            ),
            (
                r##"{"type":"integer","exclusiveMaximum":10}"##,
                r##"{"type":"integer","maximum":9}"##,
            ),
            (
                r##"{"type":"number","exclusiveMinimum":0.5}"##,
                r##"{"type":"number","minimum":0.5}"##,
            ),
            (
                r##"{"type":"integer","minimum":5,"exclusiveMinimum":0}"##,
                r##"{"type":"integer","minimum":5}"##,
            ),
            (
                r##"{"type":"integer","minimum":0,"exclusiveMinimum":true}"##,
                r##"{"type":"integer","minimum":0}"##,
            ),
            (
                r##"{"type":["string","null"],"default":null,"$comment":"c"}"##,
                r##"{"type":["string","null"],"default":null}"##,
            ),
            (
                r##"{"anyOf":[{"type":"string"},{"type":"null"}],"examples":["x"]}"##,
                r##"{"anyOf":[{"type":"string"},{"type":"null"}]}"##,
            ),
            (
                r##"{"oneOf":[{"type":"string"},{"type":"integer"}]}"##,
                r##"{"anyOf":[{"type":"string"},{"type":"integer"}]}"##,
            ),
            (
                r##"{"title":"T","type":"string","format":"uri","pattern":"^h","minLength":1}"##,
                r##"{"title":"T","type":"string"}"##,
            ),
            (
                r##"{"type":"string","format":"date"}"##,
                r##"{"type":"string","format":"date"}"##,
            ),
            (
                r##"{"type":"array","items":[{"type":"string"}],"uniqueItems":true}"##,
                r##"{"type":"array","prefixItems":[{"type":"string"}]}"##,
            ),
            (
                r##"{"type":"array","prefixItems":[{"type":"string","$comment":"c"}],"items":false}"##,
                r##"{"type":"array","prefixItems":[{"type":"string"}]}"##,
            ),
            (
                r##"{"type":"object","x-vendor":1,"properties":{"default":{"type":"string"}}}"##,
                r##"{"type":"object","properties":{"default":{"type":"string"}}}"##,
            ),
            (
                r##"{"type":"object","properties":{"a":{"$ref":"#/$defs/A","description":"mine"}},"$defs":{"A":{"type":"string","description":"theirs"}}}"##,
                r##"{"type":"object","properties":{"a":{"type":"string","description":"mine"}}}"##,
            ),
            (
                r##"{"type":"object","properties":{"a":{"allOf":[{"$ref":"#/definitions/A"}]}},"definitions":{"A":{"type":"integer","exclusiveMinimum":0}}}"##,
                r##"{"type":"object","properties":{"a":{"type":"integer","minimum":1}}}"##,
            ),
            (
                r##"{"type":"object","properties":{"a":true}}"##,
                r##"{"type":"object","properties":{"a":{}}}"##,
            ),
        ];
        for (input, expected) in table {
            assert_eq!(convert(input).unwrap(), expected, "for {input}");
        }
    }

    #[test]
    fn what_gemini_cannot_express_is_a_400_naming_the_schema_path() {
        let table = [
            (
                r##"{"type":"object","properties":{"x":{"not":{"type":"string"}}}}"##,
                "p.properties.x.not",
            ),
            (r##"{"if":{"type":"string"},"then":{}}"##, "p.if"),
            (
                r##"{"type":"object","patternProperties":{"^a":{}}}"##,
                "p.patternProperties",
            ),
            (
                r##"{"allOf":[{"type":"object"},{"required":["a"]}]}"##,
                "p.allOf",
            ),
            (r##"{"type":"boolean","const":true}"##, "p.const"),
            (
                r##"{"type":"object","properties":{"x":{"$ref":"https://example.com/s.json"}}}"##,
                "p.properties.x.$ref",
            ),
            (
                r##"{"type":"object","properties":{"x":{"$ref":"#/$defs/Missing"}}}"##,
                "p.properties.x.$ref",
            ),
            (
                r##"{"type":"object","properties":{"x":false}}"##,
                "p.properties.x",
            ),
            (
                r##"{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/Node"}}},"$defs":{"Node":{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#/$defs/Node"}}}}}}"##,
                "p.properties.kids.items.$ref.properties.kids.items.$ref",
            ),
            (r##"{"$ref":"#"}"##, "p.$ref"),
        ];
        for (input, param) in table {
            assert_eq!(param_of(input), param, "for {input}");
        }
    }

    #[test]
    fn property_order_survives_a_rebuild() {
        let out = convert(r##"{"$schema":"s","type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"string"}}}"##).unwrap();
        assert_eq!(
            out,
            r##"{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"string"}}}"##
        );
    }

    #[test]
    fn inlining_cannot_blow_up() {
        let mut defs = String::from(r##""D0":{"type":"string"}"##);
        for i in 1..30 {
            defs.push_str(&format!(
                r##","D{i}":{{"type":"array","prefixItems":[{{"$ref":"#/$defs/D{p}"}},{{"$ref":"#/$defs/D{p}"}}]}}"##,
                p = i - 1
            ));
        }
        let schema = format!(r##"{{"$ref":"#/$defs/D29","$defs":{{{defs}}}}}"##);
        assert!(matches!(convert(&schema), Err(ApiError::BadRequest { .. })));
    }
}
