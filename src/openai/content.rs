//! Message content: a string or typed parts, with media sources read once at the front door.
//!
//! Every adapter used to match part types and split `data:` URLs on its own, with different
//! answers for the same input (one matched the scheme case-sensitively, one did not). Here a
//! part is typed once: an unreadable image or file is a 400 naming the part for every
//! provider, and adapters only decide what their provider can carry.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// Message content: a string or an array of typed parts.
#[derive(Debug)]
pub enum Content<'a> {
    /// Plain text.
    Text(Cow<'a, str>),
    /// Typed parts (text, images, audio, files).
    Parts(Vec<Part<'a>>),
}

/// One content part, typed by its `type`.
#[derive(Debug)]
pub enum Part<'a> {
    /// `{"type":"text","text":...}`.
    Text(Cow<'a, str>),
    /// `{"type":"image_url","image_url":{"url":...,"detail":...}}`.
    Image {
        /// Where the image is.
        source: MediaSource<'a>,
        /// `auto`, `low` or `high`, when given.
        detail: Option<Cow<'a, str>>,
    },
    /// `{"type":"input_audio","input_audio":{"data":...,"format":...}}`.
    InputAudio {
        /// Base64 audio.
        data: Cow<'a, str>,
        /// `wav`, `mp3`, ...
        format: Cow<'a, str>,
    },
    /// `{"type":"file","file":{...}}`: an uploaded file id or inline file data.
    File(FilePart<'a>),
    /// `{"type":"refusal","refusal":...}` on an assistant turn.
    Refusal(Cow<'a, str>),
    /// A part type this router does not know; OpenAI-wire upstreams get it as sent, and
    /// translating adapters refuse it by name.
    Other(Cow<'a, str>),
}

/// The file of a `file` content part.
#[derive(Debug)]
pub struct FilePart<'a> {
    /// An id from the provider's Files API.
    pub file_id: Option<Cow<'a, str>>,
    /// The file inline, as a base64 `data:` URL.
    pub data: Option<MediaSource<'a>>,
    /// The file's name, when given.
    pub filename: Option<Cow<'a, str>>,
}

/// Where an image's or a file's bytes are.
#[derive(Debug, PartialEq, Eq)]
pub enum MediaSource<'a> {
    /// A `data:<media type>[;param]*;base64,<payload>` URL, split.
    Inline {
        /// The media type, lowercased (`image/png`); parameters are left out.
        media_type: Cow<'a, str>,
        /// The base64 payload, as sent.
        base64: Cow<'a, str>,
    },
    /// Any other URL, as sent; adapters decide which schemes and hosts their provider fetches.
    Url(Cow<'a, str>),
}

impl Part<'_> {
    /// The part's `type` as the client spelled it, for error messages.
    pub fn kind(&self) -> &str {
        match self {
            Part::Text(_) => "text",
            Part::Image { .. } => "image_url",
            Part::InputAudio { .. } => "input_audio",
            Part::File(_) => "file",
            Part::Refusal(_) => "refusal",
            Part::Other(kind) => kind,
        }
    }

    /// The text of a `text` part.
    pub fn text(&self) -> Option<&str> {
        match self {
            Part::Text(text) => Some(text),
            _ => None,
        }
    }
}

impl<'a> MediaSource<'a> {
    /// Reads a URL: a `data:` URL (scheme matched case-insensitively) must be base64 and name
    /// a media type; anything else is kept as a URL.
    pub fn parse(url: Cow<'a, str>) -> Result<Self, &'static str> {
        let is_data = url
            .get(..5)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("data:"));
        if !is_data {
            return Ok(Self::Url(url));
        }
        let comma = url.find(',').ok_or(DATA_URL_SHAPE)?;
        let meta = &url[5..comma];
        let media_type = meta.split(';').next().unwrap_or_default();
        let base64 = meta
            .rsplit(';')
            .next()
            .is_some_and(|last| last.eq_ignore_ascii_case("base64"))
            && meta.contains(';');
        if !base64 || !media_type.contains('/') || comma + 1 == url.len() {
            return Err(DATA_URL_SHAPE);
        }
        let media_type = if media_type.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(media_type.to_ascii_lowercase())
        } else {
            keep(&url, 5..5 + media_type.len())
        };
        let base64 = keep(&url, comma + 1..url.len());
        Ok(Self::Inline { media_type, base64 })
    }
}

/// What a `data:` URL must look like.
const DATA_URL_SHAPE: &str =
    "a data URL must be base64 with a media type: data:<type>/<subtype>;base64,<data>";

/// A piece of `whole`, borrowed when `whole` is.
fn keep<'a>(whole: &Cow<'a, str>, range: std::ops::Range<usize>) -> Cow<'a, str> {
    match whole {
        Cow::Borrowed(text) => Cow::Borrowed(&text[range]),
        Cow::Owned(text) => Cow::Owned(text[range].to_owned()),
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
        }
        deserializer.deserialize_any(ContentVisitor)
    }
}

/// A content part as sent: every member any part type has, checked against `type` after.
#[derive(Deserialize)]
struct PartWire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    image_url: Option<ImageUrlWire<'a>>,
    #[serde(borrow, default)]
    input_audio: Option<InputAudioWire<'a>>,
    #[serde(borrow, default)]
    file: Option<FileWire<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
}

/// `image_url` of an image part.
#[derive(Deserialize)]
struct ImageUrlWire<'a> {
    #[serde(borrow)]
    url: MediaSource<'a>,
    #[serde(borrow, default)]
    detail: Option<Cow<'a, str>>,
}

/// `input_audio` of an audio part.
#[derive(Deserialize)]
struct InputAudioWire<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
    #[serde(borrow)]
    format: Cow<'a, str>,
}

/// `file` of a file part.
#[derive(Deserialize)]
struct FileWire<'a> {
    #[serde(borrow, default)]
    file_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    file_data: Option<MediaSource<'a>>,
    #[serde(borrow, default)]
    filename: Option<Cow<'a, str>>,
}

/// A URL read where it is, so an unreadable one is a 400 naming exactly that member.
impl<'de: 'a, 'a> Deserialize<'de> for MediaSource<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let url = deserializer.deserialize_str(CowStr)?;
        MediaSource::parse(url).map_err(de::Error::custom)
    }
}

/// A string borrowed from the body when it has no escapes. (`Cow`'s own `Deserialize`
/// always copies; an image can be megabytes.)
struct CowStr;

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Part<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = PartWire::deserialize(deserializer)?;
        Part::try_from(wire).map_err(de::Error::custom)
    }
}

impl<'a> TryFrom<PartWire<'a>> for Part<'a> {
    type Error = String;

    fn try_from(wire: PartWire<'a>) -> Result<Self, String> {
        let missing = |member: &str| format!("a '{}' part needs '{member}'", wire.kind);
        match &*wire.kind {
            "text" => wire.text.map(Part::Text).ok_or_else(|| missing("text")),
            "refusal" => wire
                .refusal
                .map(Part::Refusal)
                .ok_or_else(|| missing("refusal")),
            "image_url" => {
                let image = wire.image_url.ok_or_else(|| missing("image_url"))?;
                Ok(Part::Image {
                    source: image.url,
                    detail: image.detail,
                })
            }
            "input_audio" => {
                let audio = wire.input_audio.ok_or_else(|| missing("input_audio"))?;
                Ok(Part::InputAudio {
                    data: audio.data,
                    format: audio.format,
                })
            }
            "file" => {
                let file = wire.file.ok_or_else(|| missing("file"))?;
                file_part(file)
            }
            _ => Ok(Part::Other(wire.kind)),
        }
    }
}

/// A `file` part: an id or inline data (or both, as OpenAI allows).
fn file_part(file: FileWire<'_>) -> Result<Part<'_>, String> {
    let data = file.file_data;
    if matches!(data, Some(MediaSource::Url(_))) {
        return Err(format!("'file.file_data': {DATA_URL_SHAPE}"));
    }
    if data.is_none() && file.file_id.is_none() {
        return Err("a 'file' part needs 'file.file_id' or 'file.file_data'".to_owned());
    }
    Ok(Part::File(FilePart {
        file_id: file.file_id,
        data,
        filename: file.filename,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(json: &str) -> Result<Part<'_>, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn data_urls_are_split_with_case_insensitive_scheme_and_type() {
        let inline = |media: &'static str, data: &'static str| MediaSource::Inline {
            media_type: Cow::Borrowed(media),
            base64: Cow::Borrowed(data),
        };
        for (url, want) in [
            ("data:image/png;base64,iVBO", inline("image/png", "iVBO")),
            ("DATA:image/png;base64,iVBO", inline("image/png", "iVBO")),
            ("data:Image/PNG;BASE64,iVBO", inline("image/png", "iVBO")),
            (
                "data:image/jpeg;name=a.jpg;base64,/9j/",
                inline("image/jpeg", "/9j/"),
            ),
            (
                "https://example.com/a.png",
                MediaSource::Url("https://example.com/a.png".into()),
            ),
        ] {
            assert_eq!(MediaSource::parse(Cow::Borrowed(url)), Ok(want), "{url}");
        }
        for bad in [
            "data:image/png,raw",
            "data:image/png;base64",
            "data:;base64,AA==",
            "data:image/png;base64,",
        ] {
            assert_eq!(
                MediaSource::parse(Cow::Borrowed(bad)),
                Err(DATA_URL_SHAPE),
                "{bad}"
            );
        }
    }

    #[test]
    fn borrowed_urls_stay_borrowed() {
        let Ok(Part::Image { source, .. }) =
            part(r#"{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}"#)
        else {
            panic!("not an image");
        };
        let MediaSource::Inline { media_type, base64 } = source else {
            panic!("not inline");
        };
        assert!(matches!(media_type, Cow::Borrowed("image/png")));
        assert!(matches!(base64, Cow::Borrowed("AAAA")));
    }

    #[test]
    fn every_part_type_is_typed() {
        assert!(matches!(part(r#"{"type":"text","text":"hi"}"#), Ok(Part::Text(t)) if t == "hi"));
        assert!(matches!(
            part(r#"{"type":"refusal","refusal":"no"}"#),
            Ok(Part::Refusal(r)) if r == "no"
        ));
        assert!(matches!(
            part(r#"{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}"#),
            Ok(Part::InputAudio { format, .. }) if format == "wav"
        ));
        let Ok(Part::File(file)) = part(
            r#"{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBE"}}"#,
        ) else {
            panic!("not a file");
        };
        assert_eq!(file.filename.as_deref(), Some("a.pdf"));
        assert!(matches!(
            file.data,
            Some(MediaSource::Inline { media_type, .. }) if media_type == "application/pdf"
        ));
        assert!(matches!(
            part(r#"{"type":"file","file":{"file_id":"file-1"}}"#),
            Ok(Part::File(FilePart { file_id: Some(id), .. })) if id == "file-1"
        ));
        assert!(matches!(
            part(r#"{"type":"input_video","video":{}}"#),
            Ok(Part::Other(kind)) if kind == "input_video"
        ));
    }

    #[test]
    fn parts_missing_their_member_are_refused_by_name() {
        for (json, says) in [
            (r#"{"type":"text"}"#, "a 'text' part needs 'text'"),
            (
                r#"{"type":"image_url"}"#,
                "a 'image_url' part needs 'image_url'",
            ),
            (
                r#"{"type":"image_url","image_url":{"url":"data:image/png,x"}}"#,
                "a data URL must be base64",
            ),
            (
                r#"{"type":"file","file":{}}"#,
                "needs 'file.file_id' or 'file.file_data'",
            ),
            (
                r#"{"type":"file","file":{"file_data":"https://x/y.pdf"}}"#,
                "'file.file_data': a data URL",
            ),
        ] {
            let error = part(json).unwrap_err();
            assert!(error.contains(says), "{json}: {error}");
        }
    }
}
