//! The OpenAI chunk stream a translating adapter writes (`chat.completion.chunk` frames).
//!
//! Every adapter that rebuilds a stream instead of passing it through owes the client the same
//! bookkeeping, whatever its provider's wire: one id, model and `created` on every chunk; the
//! role once per choice, before anything else of it; `finish_reason` once per choice, after
//! which the choice is closed; tool calls numbered 0, 1, 2... per choice in the order they
//! start, however the provider numbers its blocks or parts; the usage chunk when the client
//! asked for it; `[DONE]` last. [`ChunkWriter`] owns all of it, so an adapter's stream only
//! maps its own events onto deltas.

use bytes::Bytes;

use crate::error::{FailureKind, UpstreamFailure};
use crate::openai::{Chunk, ChunkChoice, DONE, Delta, UsageOut};
use crate::sse::data_frame;

/// Writes one stream's chunks as SSE `data:` frames. Memory is a few counters per choice,
/// plus one pair per tool call still streaming its arguments; never the text.
pub(super) struct ChunkWriter {
    /// The `id` every chunk repeats.
    id: String,
    /// The `model` every chunk repeats.
    model: String,
    /// The request's receive time.
    created: u64,
    /// Whether the client asked for the usage chunk (every chunk then carries `usage: null`).
    include_usage: bool,
    /// Whether chunks carry `"system_fingerprint": null` (see
    /// [`Chunk::with_null_system_fingerprint`]).
    null_fingerprint: bool,
    /// Per choice, in order of first appearance.
    choices: Vec<ChoiceState>,
    /// Whether `[DONE]` went out.
    done: bool,
}

/// Where one choice stands.
struct ChoiceState {
    /// The choice's `index`.
    index: u32,
    /// Whether its role chunk went out.
    started: bool,
    /// Whether its finish chunk went out.
    finished: bool,
    /// Whether answer text or a tool call went out (reasoning does not count).
    output: bool,
    /// Tool calls numbered so far: the next call's `index`.
    calls: usize,
    /// Tool calls whose arguments are still streaming: the provider's number for the call
    /// and the `index` it was given.
    open_calls: Vec<(u64, usize)>,
}

impl ChoiceState {
    /// A choice seen for the first time.
    fn new(index: u32) -> Self {
        Self {
            index,
            started: false,
            finished: false,
            output: false,
            calls: 0,
            open_calls: Vec::new(),
        }
    }
}

impl ChunkWriter {
    /// The writer of stream `id`, answered by `model` for a request received at `created`;
    /// `include_usage` when the client asked for the usage chunk.
    pub(super) fn new(id: String, model: String, created: u64, include_usage: bool) -> Self {
        Self {
            id,
            model,
            created,
            include_usage,
            null_fingerprint: false,
            choices: Vec::new(),
            done: false,
        }
    }

    /// The same writer, whose chunks carry `"system_fingerprint": null`.
    pub(super) fn with_null_system_fingerprint(mut self) -> Self {
        self.null_fingerprint = true;
        self
    }

    /// Notes that choice `choice` appeared, so [`Self::all_finished`] waits for its finish
    /// even if nothing of it has been sent yet.
    pub(super) fn track(&mut self, choice: u32) {
        self.position(choice);
    }

    /// Sends choice `choice`'s role chunk, unless it went out already.
    pub(super) fn open(
        &mut self,
        choice: u32,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let position = self.position(choice);
        self.open_at(position, out)
    }

    /// Sends `delta` for choice `choice`, after its role chunk. Nothing is sent to a choice
    /// that has finished: the client already has its end.
    pub(super) fn delta(
        &mut self,
        choice: u32,
        delta: Delta<'_>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let position = self.position(choice);
        if self.choices[position].finished {
            return Ok(());
        }
        self.open_at(position, out)?;
        let state = &mut self.choices[position];
        state.output |= delta.tool_calls.is_some() || delta.content.is_some_and(|c| !c.is_empty());
        self.push(choice, delta, None, out)
    }

    /// Sends choice `choice`'s finish chunk with `reason`, after its role chunk, once: later
    /// calls send nothing.
    pub(super) fn finish(
        &mut self,
        choice: u32,
        reason: &'static str,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let position = self.position(choice);
        if self.choices[position].finished {
            return Ok(());
        }
        self.open_at(position, out)?;
        let state = &mut self.choices[position];
        state.finished = true;
        self.push(choice, Delta::default(), Some(reason), out)
    }

    /// The `index` of choice `choice`'s next tool call, 0, 1, 2... in the order calls start.
    /// `block` is the provider's own number for a call whose arguments come in later
    /// fragments (see [`Self::call_index`] and [`Self::close_call`]); `None` for a call that
    /// arrives whole.
    pub(super) fn new_call(&mut self, choice: u32, block: Option<u64>) -> usize {
        let position = self.position(choice);
        let state = &mut self.choices[position];
        let index = state.calls;
        state.calls += 1;
        if let Some(block) = block {
            state.open_calls.retain(|&(open, _)| open != block);
            state.open_calls.push((block, index));
        }
        index
    }

    /// The `index` given to choice `choice`'s streaming call `block`, while it streams.
    pub(super) fn call_index(&self, choice: u32, block: u64) -> Option<usize> {
        self.choices
            .iter()
            .find(|c| c.index == choice)?
            .open_calls
            .iter()
            .find_map(|&(open, index)| (open == block).then_some(index))
    }

    /// Call `block` of choice `choice` sent its last fragment.
    pub(super) fn close_call(&mut self, choice: u32, block: u64) {
        if let Some(state) = self.choices.iter_mut().find(|c| c.index == choice) {
            state.open_calls.retain(|&(open, _)| open != block);
        }
    }

    /// How many tool calls choice `choice` has had numbered.
    pub(super) fn calls(&self, choice: u32) -> usize {
        self.choices
            .iter()
            .find(|c| c.index == choice)
            .map_or(0, |c| c.calls)
    }

    /// Whether choice `choice` has sent answer text or a tool call.
    pub(super) fn has_output(&self, choice: u32) -> bool {
        self.choices.iter().any(|c| c.index == choice && c.output)
    }

    /// Whether choice `choice` has sent its finish chunk.
    pub(super) fn is_finished(&self, choice: u32) -> bool {
        self.choices.iter().any(|c| c.index == choice && c.finished)
    }

    /// Whether at least one choice appeared and every one that did has finished.
    pub(super) fn all_finished(&self) -> bool {
        !self.choices.is_empty() && self.choices.iter().all(|c| c.finished)
    }

    /// Whether `[DONE]` went out: nothing more will.
    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    /// Ends the stream: the usage chunk with `usage` when the client asked for it, then
    /// `[DONE]`. Sends nothing the second time.
    pub(super) fn end(
        &mut self,
        usage: UsageOut,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        if self.done {
            return Ok(());
        }
        if self.include_usage {
            let chunk = Chunk::with_usage(&self.id, self.created, &self.model, usage);
            out.push(self.frame(chunk)?);
        }
        out.push(data_frame(DONE));
        self.done = true;
        Ok(())
    }

    /// The position of choice `choice`'s state, created on first sight.
    fn position(&mut self, choice: u32) -> usize {
        if let Some(position) = self.choices.iter().position(|c| c.index == choice) {
            return position;
        }
        self.choices.push(ChoiceState::new(choice));
        self.choices.len() - 1
    }

    /// The role chunk of the choice at `position`, unless it went out already.
    fn open_at(&mut self, position: usize, out: &mut Vec<Bytes>) -> Result<(), UpstreamFailure> {
        let state = &mut self.choices[position];
        if state.started {
            return Ok(());
        }
        state.started = true;
        let choice = state.index;
        self.push(choice, Delta::opening(), None, out)
    }

    /// Appends one chunk with a single choice.
    fn push(
        &self,
        choice: u32,
        delta: Delta<'_>,
        finish_reason: Option<&'static str>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), UpstreamFailure> {
        let choice = ChunkChoice::new(choice, delta, finish_reason);
        let chunk = Chunk::with_choice(
            &self.id,
            self.created,
            &self.model,
            choice,
            self.include_usage,
        );
        out.push(self.frame(chunk)?);
        Ok(())
    }

    /// `chunk` as an SSE `data:` frame.
    fn frame(&self, chunk: Chunk<'_>) -> Result<Bytes, UpstreamFailure> {
        let chunk = if self.null_fingerprint {
            chunk.with_null_system_fingerprint()
        } else {
            chunk
        };
        serde_json::to_vec(&chunk)
            .map(|json| data_frame(&json))
            .map_err(|e| {
                UpstreamFailure::new(
                    FailureKind::Stream,
                    format!("a stream chunk could not be written ({e})"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::openai::PromptTokensDetails;

    fn writer(include_usage: bool) -> ChunkWriter {
        ChunkWriter::new("chatcmpl-1".to_owned(), "m".to_owned(), 7, include_usage)
    }

    /// The JSON payloads of `frames`, `[DONE]` as a string.
    fn payloads(frames: &[Bytes]) -> Vec<Value> {
        frames
            .iter()
            .map(|frame| {
                let text = std::str::from_utf8(frame).unwrap();
                let payload = text
                    .strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap();
                serde_json::from_str(payload).unwrap_or_else(|_| json!(payload))
            })
            .collect()
    }

    fn usage() -> UsageOut {
        UsageOut {
            prompt_tokens: 3,
            completion_tokens: 4,
            total_tokens: 7,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: 0,
                cache_write_tokens: None,
            },
            completion_tokens_details: None,
        }
    }

    #[test]
    fn every_chunk_repeats_the_header_and_frames_are_exact() {
        let mut out = Vec::new();
        let mut writer = writer(false);
        writer.delta(0, Delta::content("hi"), &mut out).unwrap();
        assert_eq!(
            &out[1][..],
            b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
        );
        let mut out = Vec::new();
        let mut writer = writer_with_fingerprint();
        writer.delta(0, Delta::content("hi"), &mut out).unwrap();
        let chunk = &payloads(&out)[1];
        assert!(chunk["system_fingerprint"].is_null() && chunk.get("system_fingerprint").is_some());
        assert!(chunk["usage"].is_null() && chunk.get("usage").is_some());
    }

    fn writer_with_fingerprint() -> ChunkWriter {
        writer(true).with_null_system_fingerprint()
    }

    #[test]
    fn the_role_goes_out_once_per_choice_before_anything_else() {
        let mut out = Vec::new();
        let mut writer = writer(false);
        writer.open(0, &mut out).unwrap();
        writer.delta(0, Delta::content("a"), &mut out).unwrap();
        writer.delta(1, Delta::reasoning("b"), &mut out).unwrap();
        writer.open(1, &mut out).unwrap();
        writer.finish(2, "stop", &mut out).unwrap();
        let deltas: Vec<(u64, Value)> = payloads(&out)
            .iter()
            .map(|c| {
                (
                    c["choices"][0]["index"].as_u64().unwrap(),
                    c["choices"][0]["delta"].clone(),
                )
            })
            .collect();
        assert_eq!(
            deltas,
            [
                (0, json!({"role": "assistant", "content": ""})),
                (0, json!({"content": "a"})),
                (1, json!({"role": "assistant", "content": ""})),
                (1, json!({"reasoning_content": "b"})),
                (2, json!({"role": "assistant", "content": ""})),
                (2, json!({})),
            ]
        );
    }

    #[test]
    fn the_finish_goes_out_once_and_closes_the_choice() {
        let mut out = Vec::new();
        let mut writer = writer(false);
        writer.track(1);
        writer.finish(0, "length", &mut out).unwrap();
        assert!(
            !writer.all_finished(),
            "choice 1 appeared and has not finished"
        );
        writer.finish(0, "stop", &mut out).unwrap();
        writer.delta(0, Delta::content("late"), &mut out).unwrap();
        let chunks = payloads(&out);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "length");
        assert!(writer.is_finished(0) && !writer.is_finished(1));
        writer.finish(1, "stop", &mut out).unwrap();
        assert!(writer.all_finished());
    }

    #[test]
    fn tool_calls_are_numbered_per_choice_and_found_by_the_providers_number() {
        let mut writer = writer(false);
        assert_eq!(writer.new_call(0, Some(4)), 0);
        assert_eq!(writer.new_call(1, None), 0);
        assert_eq!(writer.new_call(0, Some(2)), 1);
        assert_eq!(writer.new_call(0, Some(9)), 2);
        assert_eq!(writer.call_index(0, 2), Some(1));
        assert_eq!(writer.call_index(0, 4), Some(0));
        assert_eq!(writer.call_index(1, 4), None);
        writer.close_call(0, 4);
        assert_eq!(writer.call_index(0, 4), None);
        assert_eq!(writer.call_index(0, 9), Some(2));
        assert_eq!(
            (writer.calls(0), writer.calls(1), writer.calls(3)),
            (3, 1, 0)
        );
    }

    #[test]
    fn output_counts_answer_text_and_calls_not_reasoning_or_the_role() {
        let mut out = Vec::new();
        let mut writer = writer(false);
        writer.delta(0, Delta::reasoning("r"), &mut out).unwrap();
        writer.delta(0, Delta::content(""), &mut out).unwrap();
        assert!(!writer.has_output(0));
        writer.delta(0, Delta::content("x"), &mut out).unwrap();
        assert!(writer.has_output(0) && !writer.has_output(1));
    }

    #[test]
    fn the_end_is_the_usage_chunk_when_asked_then_done_once() {
        let mut out = Vec::new();
        let mut asked = writer(true);
        asked.end(usage(), &mut out).unwrap();
        asked.end(usage(), &mut out).unwrap();
        assert!(asked.is_done());
        let chunks = payloads(&out);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0]["choices"], json!([]));
        assert_eq!(chunks[0]["usage"]["total_tokens"], 7);
        assert_eq!(chunks[1], json!("[DONE]"));
        let mut out = Vec::new();
        writer(false).end(usage(), &mut out).unwrap();
        assert_eq!(payloads(&out), [json!("[DONE]")]);
    }
}
