//! The OpenAI embeddings wire (`POST /v1/embeddings`), as the router reads and writes it.
//!
//! [`EmbeddingsRequest::parse`] is the front door's validation, with 400s that name the
//! `param` at fault. OpenAI-wire upstreams receive the client's bytes with only `model`
//! replaced; the translating adapters read the typed [`Input`]. [`ListWriter`] writes the
//! answer of a provider that does not speak the wire, and [`base64_in_place`] turns floats an
//! upstream sent into the `base64` the client asked for: the little-endian bytes of each value
//! as an `f32`, which is what OpenAI sends and what the SDKs decode.

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{invalid_body, poisoned, span_of, unescape_string, write_json_string};
use crate::error::ApiError;
use crate::json_guard;

/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// How the vectors are written in the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodingFormat {
    /// JSON arrays of numbers (the default).
    Float,
    /// Each vector's little-endian `f32` bytes, base64-encoded.
    Base64,
}

/// What to embed.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// One or more texts.
    Texts(Vec<String>),
    /// One or more token arrays (OpenAI tokenizer ids), for the upstreams that take them.
    Tokens(Vec<Vec<u32>>),
}

impl Input {
    /// How many vectors the answer holds.
    pub fn len(&self) -> usize {
        match self {
            Self::Texts(texts) => texts.len(),
            Self::Tokens(tokens) => tokens.len(),
        }
    }

    /// Whether there is nothing to embed (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A validated embeddings request: the typed view plus the client's raw bytes.
#[derive(Debug)]
pub struct EmbeddingsRequest<'a> {
    raw: &'a [u8],
    model_span: Range<usize>,
    /// Where the client's `encoding_format` value is, for upstreams that only send floats.
    encoding_format_span: Option<Range<usize>>,
    /// The requested model (a route name or `provider/model`), unescaped.
    pub model: Cow<'a, str>,
    /// What to embed.
    pub input: Input,
    /// The vectors' length, when the client chose one.
    pub dimensions: Option<u32>,
    /// How the client wants the vectors written.
    pub encoding_format: EncodingFormat,
}

/// The members the router type-checks; the rest stay in the raw body.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(default)]
    dimensions: Option<u32>,
    #[serde(borrow, default)]
    encoding_format: Option<&'a RawValue>,
    /// Type-checked only: it is passed on (or dropped) with the rest of the body.
    #[serde(default)]
    #[expect(dead_code, reason = "read to type-check it, never used")]
    user: Option<String>,
}

/// The shapes `input` may take.
#[derive(Deserialize)]
#[serde(untagged)]
enum InputWire {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl<'a> EmbeddingsRequest<'a> {
    /// Parses and validates a client's request body.
    pub fn parse(raw: &'a [u8]) -> Result<Self, ApiError> {
        let text = json_guard::check(raw).map_err(|poison| poisoned(raw, poison))?;
        let wire: Wire<'a> = match serde_json::from_str(text) {
            Ok(wire) => wire,
            Err(_) => {
                let deserializer = &mut serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(deserializer).map_err(invalid_body)?
            }
        };
        let model_raw = wire.model.ok_or_else(|| {
            ApiError::bad_request("You must provide a model parameter.", Some("model".into()))
        })?;
        let model = unescape_string(model_raw)
            .filter(|model| !model.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Invalid 'model': expected a non-empty string.",
                    Some("model".into()),
                )
            })?;
        let input = parse_input(wire.input)?;
        if wire.dimensions == Some(0) {
            return Err(ApiError::bad_request(
                "Invalid 'dimensions': must be at least 1.",
                Some("dimensions".into()),
            ));
        }
        let encoding_format = match wire.encoding_format.map(RawValue::get) {
            None | Some("null" | "\"float\"") => EncodingFormat::Float,
            Some("\"base64\"") => EncodingFormat::Base64,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "Invalid 'encoding_format': expected \"float\" or \"base64\".",
                    Some("encoding_format".into()),
                ));
            }
        };
        Ok(Self {
            raw,
            model_span: span_of(raw, model_raw.get()),
            encoding_format_span: wire.encoding_format.map(|v| span_of(raw, v.get())),
            model,
            input,
            dimensions: wire.dimensions,
            encoding_format,
        })
    }

    /// The client's bytes as received.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The client's body with `model` replaced, every other byte as the client sent it.
    pub fn body_with_model(&self, model: &str) -> Bytes {
        self.edited(model, None)
    }

    /// [`Self::body_with_model`] for an upstream that only sends floats: a `base64` request
    /// asks it for `float` (the router encodes the answer; see [`base64_in_place`]).
    pub fn body_with_model_asking_floats(&self, model: &str) -> Bytes {
        let span = self
            .encoding_format_span
            .clone()
            .filter(|_| self.encoding_format == EncodingFormat::Base64);
        self.edited(model, span.map(|span| (span, &b"\"float\""[..])))
    }

    /// The raw body with `model` replaced, and one more span replaced when given.
    fn edited(&self, model: &str, other: Option<(Range<usize>, &[u8])>) -> Bytes {
        let mut model_json = BytesMut::with_capacity(model.len() + 2);
        write_json_string(&mut model_json, model);
        let mut edits = [Some((self.model_span.clone(), &model_json[..])), other];
        edits.sort_by_key(|edit| edit.as_ref().map_or(usize::MAX, |(span, _)| span.start));
        let mut out = BytesMut::with_capacity(self.raw.len() + model.len());
        let mut at = 0;
        for (span, bytes) in edits.into_iter().flatten() {
            out.put_slice(&self.raw[at..span.start]);
            out.put_slice(bytes);
            at = span.end;
        }
        out.put_slice(&self.raw[at..]);
        out.freeze()
    }

    /// The input tokens, estimated for the rate limits before the provider counts them (and
    /// as the usage of providers that report none): a token array counts its tokens, a text
    /// one token per four bytes (at least one), as providers roughly do for English.
    pub fn estimated_tokens(&self) -> u64 {
        match &self.input {
            Input::Texts(texts) => texts
                .iter()
                .map(|text| text.len().div_ceil(4).max(1) as u64)
                .sum(),
            Input::Tokens(lists) => lists.iter().map(|list| list.len() as u64).sum(),
        }
    }
}

/// `input` checked: present, of one of its four shapes, not empty, at most [`MAX_INPUTS`]
/// items, no empty text or token array.
fn parse_input(raw: Option<&RawValue>) -> Result<Input, ApiError> {
    let invalid = |message: String| ApiError::bad_request(message, Some("input".into()));
    let raw = raw.ok_or_else(|| invalid("You must provide an input parameter.".into()))?;
    let input = match serde_json::from_str::<InputWire>(raw.get()) {
        Ok(InputWire::Text(text)) => Input::Texts(vec![text]),
        Ok(InputWire::Texts(texts)) => Input::Texts(texts),
        Ok(InputWire::Tokens(tokens)) => Input::Tokens(vec![tokens]),
        Ok(InputWire::TokenLists(lists)) => Input::Tokens(lists),
        Err(_) => {
            return Err(invalid(
                "Invalid 'input': expected a string, an array of strings, an array of token \
                 ids or an array of token id arrays."
                    .into(),
            ));
        }
    };
    if input.is_empty() {
        return Err(invalid("Invalid 'input': it must not be empty.".into()));
    }
    if input.len() > MAX_INPUTS {
        return Err(invalid(format!(
            "Invalid 'input': at most {MAX_INPUTS} inputs per request, got {}.",
            input.len()
        )));
    }
    let empty_item = match &input {
        Input::Texts(texts) => texts.iter().position(String::is_empty),
        Input::Tokens(lists) => lists.iter().position(Vec::is_empty),
    };
    if let Some(index) = empty_item {
        return Err(invalid(format!(
            "Invalid 'input[{index}]': an input must not be empty."
        )));
    }
    Ok(input)
}

/// A JSON number that is no `f32`, or a vector that is no array of numbers.
#[derive(Debug, thiserror::Error)]
#[error("an embedding is not an array of numbers")]
pub struct NotAVector;

/// Writes OpenAI's list answer, `{"object":"list","data":[…],"model":…,"usage":…}`, one
/// vector at a time.
#[derive(Debug)]
pub struct ListWriter {
    out: BytesMut,
    format: EncodingFormat,
    count: u32,
}

impl ListWriter {
    /// An empty list writing vectors as `format`; `capacity` is a guess of the body's size.
    pub fn new(format: EncodingFormat, capacity: usize) -> Self {
        let mut out = BytesMut::with_capacity(capacity);
        out.put_slice(br#"{"object":"list","data":["#);
        Self {
            out,
            format,
            count: 0,
        }
    }

    /// Adds the next vector, given as `f32` values.
    pub fn push_floats(&mut self, values: &[f32]) {
        self.open_item();
        match self.format {
            EncodingFormat::Float => {
                self.out.put_u8(b'[');
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        self.out.put_u8(b',');
                    }
                    // The shortest form that reads back as this f32, with a `.0` on whole
                    // numbers as OpenAI writes them.
                    self.out.put_slice(format!("{value:?}").as_bytes());
                }
                self.out.put_u8(b']');
            }
            EncodingFormat::Base64 => self.put_base64(values),
        }
        self.out.put_u8(b'}');
    }

    /// Adds the next vector, given as the JSON array an upstream sent: copied as it is for
    /// `float`, its values read as `f32` for `base64`.
    pub fn push_json(&mut self, array: &RawValue) -> Result<(), NotAVector> {
        let values = match self.format {
            EncodingFormat::Float => None,
            EncodingFormat::Base64 => Some(read_floats(array)?),
        };
        self.open_item();
        match values {
            None => self.out.put_slice(array.get().as_bytes()),
            Some(values) => self.put_base64(&values),
        }
        self.out.put_u8(b'}');
        Ok(())
    }

    /// The finished body, naming `model` and the input tokens.
    pub fn finish(mut self, model: &str, prompt_tokens: u64) -> Bytes {
        self.out.put_slice(br#"],"model":"#);
        write_json_string(&mut self.out, model);
        let usage = format!(
            r#","usage":{{"prompt_tokens":{prompt_tokens},"total_tokens":{prompt_tokens}}}}}"#
        );
        self.out.put_slice(usage.as_bytes());
        self.out.freeze()
    }

    /// `{"object":"embedding","index":N,"embedding":` after a comma when needed.
    fn open_item(&mut self) {
        if self.count > 0 {
            self.out.put_u8(b',');
        }
        let head = format!(
            r#"{{"object":"embedding","index":{},"embedding":"#,
            self.count
        );
        self.out.put_slice(head.as_bytes());
        self.count += 1;
    }

    fn put_base64(&mut self, values: &[f32]) {
        self.out.put_u8(b'"');
        self.out.put_slice(base64_of(values).as_bytes());
        self.out.put_u8(b'"');
    }
}

/// The little-endian bytes of `values` as `f32`s, base64-encoded.
pub fn base64_of(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    BASE64.encode(bytes)
}

/// The numbers of a JSON array, each read as the nearest `f32`.
fn read_floats(array: &RawValue) -> Result<Vec<f32>, NotAVector> {
    let numbers: Vec<&RawValue> = serde_json::from_str(array.get()).map_err(|_| NotAVector)?;
    numbers
        .iter()
        .map(|number| number.get().parse::<f32>().map_err(|_| NotAVector))
        .collect()
}

/// Just where each `data[].embedding` of an answer is.
#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    data: Vec<Item<'a>>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow)]
    embedding: &'a RawValue,
}

/// An OpenAI-wire answer with every `embedding` that is an array of floats replaced by its
/// base64 form, every other byte as the upstream sent it: for upstreams that ignore (or
/// cannot honour) `encoding_format: "base64"`. An answer already in base64 comes back as is.
pub fn base64_in_place(body: Bytes) -> Result<Bytes, NotAVector> {
    let answer: Answer<'_> = serde_json::from_slice(&body).map_err(|_| NotAVector)?;
    let text = std::str::from_utf8(&body).map_err(|_| NotAVector)?;
    let mut out = BytesMut::with_capacity(body.len());
    let mut at = 0;
    for item in answer
        .data
        .iter()
        .filter(|i| i.embedding.get().starts_with('['))
    {
        let span = span_of(text.as_bytes(), item.embedding.get());
        out.put_slice(&body[at..span.start]);
        out.put_u8(b'"');
        out.put_slice(base64_of(&read_floats(item.embedding)?).as_bytes());
        out.put_u8(b'"');
        at = span.end;
    }
    if at == 0 {
        return Ok(body);
    }
    out.put_slice(&body[at..]);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<EmbeddingsRequest<'_>, ApiError> {
        EmbeddingsRequest::parse(body.as_bytes())
    }

    fn param(body: &str) -> String {
        let error = parse(body).unwrap_err();
        let json: serde_json::Value = serde_json::from_slice(&error.body()).unwrap();
        assert_eq!(error.status(), http::StatusCode::BAD_REQUEST, "{json}");
        json["error"]["param"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn every_input_shape_is_read() {
        let texts = |body| parse(body).unwrap().input;
        assert_eq!(
            texts(r#"{"model":"m","input":"hi"}"#),
            Input::Texts(vec!["hi".into()])
        );
        assert_eq!(
            texts(r#"{"model":"m","input":["a","b\n"]}"#),
            Input::Texts(vec!["a".into(), "b\n".into()])
        );
        assert_eq!(
            texts(r#"{"model":"m","input":[1,2,3]}"#),
            Input::Tokens(vec![vec![1, 2, 3]])
        );
        assert_eq!(
            texts(r#"{"model":"m","input":[[1],[2,3]]}"#),
            Input::Tokens(vec![vec![1], vec![2, 3]])
        );
    }

    #[test]
    fn bad_requests_name_their_param() {
        assert_eq!(param(r#"{"input":"x"}"#), "model");
        assert_eq!(param(r#"{"model":"","input":"x"}"#), "model");
        assert_eq!(param(r#"{"model":"m"}"#), "input");
        assert_eq!(param(r#"{"model":"m","input":""}"#), "input");
        assert_eq!(param(r#"{"model":"m","input":[]}"#), "input");
        assert_eq!(param(r#"{"model":"m","input":["a",""]}"#), "input");
        assert_eq!(param(r#"{"model":"m","input":[[1],[]]}"#), "input");
        assert_eq!(param(r#"{"model":"m","input":[1,"a"]}"#), "input");
        assert_eq!(param(r#"{"model":"m","input":{"a":1}}"#), "input");
        assert_eq!(
            param(r#"{"model":"m","input":"x","dimensions":0}"#),
            "dimensions"
        );
        assert_eq!(
            param(r#"{"model":"m","input":"x","dimensions":-3}"#),
            "dimensions"
        );
        assert_eq!(
            param(r#"{"model":"m","input":"x","encoding_format":"int8"}"#),
            "encoding_format"
        );
        assert_eq!(param(r#"{"model":"m","input":"x","user":5}"#), "user");
        let many = format!(
            r#"{{"model":"m","input":[{}]}}"#,
            vec!["\"a\""; 2049].join(",")
        );
        assert_eq!(param(&many), "input");
        let most = format!(
            r#"{{"model":"m","input":[{}]}}"#,
            vec!["\"a\""; 2048].join(",")
        );
        assert_eq!(parse(&most).unwrap().input.len(), 2048);
    }

    #[test]
    fn the_upstream_body_changes_only_the_model_and_asked_format() {
        let raw = r#"{"input":"x", "encoding_format":"base64","model":"route","user":"u"}"#;
        let request = parse(raw).unwrap();
        assert_eq!(request.encoding_format, EncodingFormat::Base64);
        assert_eq!(
            request.body_with_model("m\"1"),
            r#"{"input":"x", "encoding_format":"base64","model":"m\"1","user":"u"}"#
        );
        assert_eq!(
            request.body_with_model_asking_floats("m"),
            r#"{"input":"x", "encoding_format":"float","model":"m","user":"u"}"#
        );
        let floats = parse(r#"{"model":"r","input":"x"}"#).unwrap();
        assert_eq!(floats.encoding_format, EncodingFormat::Float);
        assert_eq!(
            floats.body_with_model_asking_floats("m"),
            r#"{"model":"m","input":"x"}"#
        );
    }

    #[test]
    fn token_estimates_count_tokens_or_bytes() {
        let estimate = |body| parse(body).unwrap().estimated_tokens();
        assert_eq!(estimate(r#"{"model":"m","input":["abcdefgh","a"]}"#), 3);
        assert_eq!(estimate(r#"{"model":"m","input":[[1,2],[3]]}"#), 3);
    }

    fn decode(text: &str) -> Vec<f32> {
        BASE64
            .decode(text)
            .unwrap()
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn lists_are_written_as_floats_or_exact_base64() {
        let array = RawValue::from_string("[0.1, -2.5e-3,1]".into()).unwrap();
        let mut floats = ListWriter::new(EncodingFormat::Float, 64);
        floats.push_json(&array).unwrap();
        floats.push_floats(&[0.25, -1.0]);
        let body: serde_json::Value = serde_json::from_slice(&floats.finish("m", 7)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"object":"list","data":[
                {"object":"embedding","index":0,"embedding":[0.1,-2.5e-3,1]},
                {"object":"embedding","index":1,"embedding":[0.25,-1.0]}],
                "model":"m","usage":{"prompt_tokens":7,"total_tokens":7}})
        );
        let mut base64 = ListWriter::new(EncodingFormat::Base64, 64);
        base64.push_json(&array).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&base64.finish("m", 1)).unwrap();
        let encoded = body["data"][0]["embedding"].as_str().unwrap();
        assert_eq!(decode(encoded), vec![0.1f32, -2.5e-3, 1.0]);
        let bad = RawValue::from_string(r#"["x"]"#.into()).unwrap();
        assert!(
            ListWriter::new(EncodingFormat::Base64, 8)
                .push_json(&bad)
                .is_err()
        );
    }

    #[test]
    fn floats_are_encoded_in_place_and_base64_is_left_alone() {
        let body = Bytes::from_static(
            br#"{"data":[{"embedding":[0.5,-0.125],"index":0,"object":"embedding"}],"id":"x","usage":{"prompt_tokens":1}}"#,
        );
        let encoded = base64_in_place(body).unwrap();
        let text = std::str::from_utf8(&encoded).unwrap();
        let b64 = base64_of(&[0.5, -0.125]);
        assert_eq!(
            text,
            format!(
                r#"{{"data":[{{"embedding":"{b64}","index":0,"object":"embedding"}}],"id":"x","usage":{{"prompt_tokens":1}}}}"#
            )
        );
        assert_eq!(base64_in_place(encoded.clone()).unwrap(), encoded);
    }
}
