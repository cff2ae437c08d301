//! Which OpenAI request fields a provider can honour: one table per adapter, one check.
//!
//! Each adapter declares its [`Honours`] beside its translation; [`Honours::check`] is the one
//! place that decides whether a field asks for something (`logprobs: false` and
//! `modalities: ["text"]` ask for nothing) and words the 400. So the same request gets the
//! same refusal, with the same `param`, from every provider that cannot serve it.

use crate::config::Target;
use crate::error::ApiError;
use crate::openai::{ChatRequest, Part, ReasoningEffort, ToolChoice};

/// What a provider does with the optional OpenAI request fields: `true` where it honours
/// (or the adapter translates) the field, `false` where the request is refused when the field
/// asks for something.
#[derive(Clone, Copy, Debug)]
pub struct Honours {
    /// The most choices (`n`) one answer can hold.
    pub max_choices: u32,
    /// `presence_penalty` and `frequency_penalty`.
    pub penalties: bool,
    /// `logprobs: true` and `top_logprobs` above 0.
    pub logprobs: bool,
    /// A non-empty `logit_bias`.
    pub logit_bias: bool,
    /// `audio`, and `modalities` other than text.
    pub audio_output: bool,
    /// `web_search_options`.
    pub web_search: bool,
    /// The deprecated `functions` and `function_call`.
    pub legacy_functions: bool,
    /// `reasoning_effort` other than `none`.
    pub reasoning_effort: bool,
    /// Tools and `tool_choice` objects of types other than `function` (OpenAI's custom and
    /// allowed-tools forms).
    pub other_tool_types: bool,
}

impl Honours {
    /// Everything: an upstream that speaks the OpenAI wire gets the fields as sent and
    /// answers for itself.
    pub const OPENAI_WIRE: Self = Self {
        max_choices: crate::openai::MAX_CHOICES,
        penalties: true,
        logprobs: true,
        logit_bias: true,
        audio_output: true,
        web_search: true,
        legacy_functions: true,
        reasoning_effort: true,
        other_tool_types: true,
    };

    /// Refuses the first field of `chat` that asks for something this provider cannot do.
    pub fn check(&self, chat: &ChatRequest<'_>, target: &Target) -> Result<(), ApiError> {
        let body = &chat.body;
        let refuse = |param: &str, why: &str| Err(unsupported(param, target, why));
        if let Some(n) = body.n.filter(|&n| n > self.max_choices) {
            let max = self.max_choices;
            return refuse(
                "n",
                &format!(
                    "it returns at most {max} choice(s) per request, and 'n' = {n} asks for more"
                ),
            );
        }
        if !self.penalties {
            for (param, value) in [
                ("presence_penalty", body.presence_penalty),
                ("frequency_penalty", body.frequency_penalty),
            ] {
                if value.is_some_and(|v| v != 0.0) {
                    return refuse(param, "it has no repetition penalties");
                }
            }
        }
        if !self.logprobs {
            if body.logprobs == Some(true) {
                return refuse("logprobs", "it does not return log probabilities");
            }
            if body.top_logprobs.is_some_and(|n| n > 0) {
                return refuse("top_logprobs", "it does not return log probabilities");
            }
        }
        if !self.logit_bias && body.logit_bias.as_ref().is_some_and(|b| b.entries > 0) {
            return refuse("logit_bias", "it has no token biasing");
        }
        if !self.audio_output {
            if body.audio.is_some() {
                return refuse("audio", "it only produces text through this router");
            }
            if let Some(modalities) = &body.modalities
                && modalities.iter().any(|m| m != "text")
            {
                return refuse("modalities", "it only produces text through this router");
            }
        }
        if !self.web_search && body.web_search_options.is_some() {
            return refuse(
                "web_search_options",
                "its web search is a server tool this router does not translate",
            );
        }
        if !self.legacy_functions {
            if body.functions.is_some() {
                return refuse(
                    "functions",
                    "the deprecated functions API is not translated; send 'tools' instead",
                );
            }
            if body.function_call.is_some() {
                return refuse(
                    "function_call",
                    "the deprecated functions API is not translated; send 'tool_choice' instead",
                );
            }
        }
        if !self.reasoning_effort
            && body
                .reasoning_effort
                .is_some_and(|effort| effort != ReasoningEffort::None)
        {
            return refuse(
                "reasoning_effort",
                "its reasoning is not translated; leave it out or send \"none\"",
            );
        }
        if !self.other_tool_types {
            self.check_tool_types(chat, target)?;
        }
        Ok(())
    }

    /// Only function tools, and only function or mode tool choices.
    fn check_tool_types(&self, chat: &ChatRequest<'_>, target: &Target) -> Result<(), ApiError> {
        for (i, tool) in chat.body.tools.iter().flatten().enumerate() {
            if tool.kind != "function" {
                return Err(unsupported(
                    &format!("tools[{i}].type"),
                    target,
                    &format!("tools of type '{}' (only function tools are)", tool.kind),
                ));
            }
        }
        if let Some(ToolChoice::Other(kind)) = &chat.body.tool_choice {
            return Err(unsupported(
                "tool_choice.type",
                target,
                &format!("tool choices of type '{kind}' (only function choices are)"),
            ));
        }
        Ok(())
    }
}

/// The 400 for a field `target`'s provider cannot honour.
pub(super) fn unsupported(param: &str, target: &Target, why: &str) -> ApiError {
    ApiError::unsupported(
        format!(
            "'{param}' is not supported by provider '{}' (kind {}): {why}.",
            target.provider.name,
            target.provider.kind.as_str()
        ),
        param,
    )
}

/// The 400 for a content part `target`'s provider cannot take where it was sent (`where_`
/// names the place, e.g. "system messages").
pub(super) fn unsupported_part(
    param: &str,
    part: &Part<'_>,
    target: &Target,
    where_: &str,
) -> ApiError {
    unsupported(
        param,
        target,
        &format!("'{}' content parts in {where_}", part.kind()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Named, ProviderKind, Target};

    fn target(kind: ProviderKind) -> Target {
        let base_url = match kind {
            ProviderKind::Mock => "",
            _ => "base_url = \"https://example.com\"\n",
        };
        let toml = format!(
            "[providers.p]\nkind = \"{}\"\n{base_url}\n[providers.p.models.\"m\"]\n",
            kind.as_str()
        );
        let snapshot = crate::config::parse(&toml, "test.toml", &|_| None).unwrap();
        snapshot.route("p/m").unwrap().targets[0].clone()
    }

    /// Every adapter's table, checked against one list of requests: a field is refused by
    /// exactly the providers whose table says they cannot honour it, with the same `param`.
    #[test]
    fn the_table_decides_for_every_adapter() {
        /// A field to send, the param a refusal names, and whether a table honours it.
        type Case = (&'static str, &'static str, fn(&Honours) -> bool);
        let cases: &[Case] = &[
            (r#","n":2"#, "n", |h| h.max_choices >= 2),
            (r#","presence_penalty":0.5"#, "presence_penalty", |h| {
                h.penalties
            }),
            (r#","frequency_penalty":-1"#, "frequency_penalty", |h| {
                h.penalties
            }),
            (r#","logprobs":true"#, "logprobs", |h| h.logprobs),
            (r#","top_logprobs":3"#, "top_logprobs", |h| h.logprobs),
            (r#","logit_bias":{"1":5}"#, "logit_bias", |h| h.logit_bias),
            (
                r#","audio":{"voice":"alloy","format":"wav"}"#,
                "audio",
                |h| h.audio_output,
            ),
            (r#","modalities":["text","audio"]"#, "modalities", |h| {
                h.audio_output
            }),
            (r#","web_search_options":{}"#, "web_search_options", |h| {
                h.web_search
            }),
            (r#","functions":[{"name":"f"}]"#, "functions", |h| {
                h.legacy_functions
            }),
            (r#","function_call":"auto""#, "function_call", |h| {
                h.legacy_functions
            }),
            (r#","reasoning_effort":"high""#, "reasoning_effort", |h| {
                h.reasoning_effort
            }),
            (
                r#","tools":[{"type":"custom","function":{"name":"f"}}]"#,
                "tools[0].type",
                |h| h.other_tool_types,
            ),
            (
                r#","tool_choice":{"type":"allowed_tools","allowed_tools":{}}"#,
                "tool_choice.type",
                |h| h.other_tool_types,
            ),
        ];
        let inert = r#","logprobs":false,"top_logprobs":0,"logit_bias":{},"modalities":["text"],"presence_penalty":0,"frequency_penalty":0.0,"reasoning_effort":"none","web_search_options":null,"n":1"#;
        for &kind in ProviderKind::ALL {
            let target = target(kind);
            let honours = super::super::adapter_for(kind).honours(&target);
            let body =
                format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}]{inert}}}"#);
            let chat = ChatRequest::parse(body.as_bytes()).unwrap();
            assert!(
                honours.check(&chat, &target).is_ok(),
                "{kind:?} refused inert values"
            );
            for (extra, param, honoured) in cases {
                let body = format!(
                    r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}]{extra}}}"#
                );
                let chat = ChatRequest::parse(body.as_bytes()).unwrap();
                match honours.check(&chat, &target) {
                    Ok(()) => assert!(honoured(honours), "{kind:?} let {param} through"),
                    Err(error) => {
                        assert!(!honoured(honours), "{kind:?} refused {param}");
                        let json: serde_json::Value =
                            serde_json::from_slice(&error.body()).unwrap();
                        assert_eq!(json["error"]["param"], *param, "{kind:?}");
                        assert_eq!(json["error"]["code"], "unsupported_parameter");
                    }
                }
            }
        }
    }
}
