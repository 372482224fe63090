//! Carrying out what an `ai` node asks: the contact's latest message (its
//! photo to the vision model, its voice note transcribed, its PDF read),
//! the conversation before it, and the answer, with every call recorded.
//!
//! This runs in a worker after the step's transaction committed: an AI
//! call takes seconds, and no transaction or contact lock waits for it.

use std::sync::Arc;

use confab_ai::{AiClient, AiError, ChatMessage, ChatRequest, JsonSchemaFormat, Part, Role};
use confab_channels::media::Fetched;
use confab_flow::{EffectResult, Request};
use confab_model::{Direction, MessageKind, OutboundContent};
use confab_store::{Message, MessageFilter, NewAiCall, Store, StoreError, StoredMedia};

use crate::config::Settings;
use crate::media::{FileError, Files};

/// What the AI is asked to do with a document when the caption asks nothing.
const SUMMARISE: &str = "Summarise this document briefly.";
const DESCRIBE: &str = "What is in this image?";

/// Carries out AI requests for runs.
pub struct Assistant {
    store: Store,
    settings: Arc<Settings>,
    client: Option<AiClient>,
    /// The bots, whose AI settings apply.
    bots: Arc<crate::bots::Directory>,
    /// The files contacts send.
    files: Arc<Files>,
}

/// Who asked, for the record of the call.
#[derive(Clone, Debug)]
pub struct Asker {
    /// The bot of the run's contact, whose AI settings apply.
    pub bot_id: i64,
    pub run_id: i64,
    pub contact_id: i64,
    pub flow_id: String,
    pub node: Option<String>,
}

/// A bot's AI settings over the server's (`bots.ai`); an `ai` node's own
/// settings go over both.
#[derive(
    Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct BotAi {
    /// What the assistant is told it is (`SYSTEM_PROMPT` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// The chat model (`OPENAI_MODEL` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The model for photos (`OPENAI_VISION_MODEL` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision_model: Option<String>,
    /// Earlier messages sent along with a question, 0 to 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<u32>,
}

impl BotAi {
    /// The settings a bot's record holds (checked when written).
    pub fn of(value: &serde_json::Value) -> BotAi {
        serde_json::from_value(value.clone()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "a bot's AI settings cannot be read; using the server's");
            BotAi::default()
        })
    }

    /// The first field that is out of bounds, with why.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let text = |field: &'static str, v: &Option<String>, max: usize| {
            v.as_ref().and_then(|t| {
                (t.trim().is_empty() || t.chars().count() > max)
                    .then(|| (field, format!("1 to {max} characters")))
            })
        };
        text("ai.system_prompt", &self.system_prompt, 20_000)
            .or_else(|| text("ai.model", &self.model, 100))
            .or_else(|| text("ai.vision_model", &self.vision_model, 100))
            .or_else(|| {
                self.history
                    .filter(|h| *h > 50)
                    .map(|_| ("ai.history", "0 to 50 messages".to_string()))
            })
    }
}

/// Why the contact's message cannot be put to the AI, as the flow's code.
struct Refusal {
    code: &'static str,
    error: String,
}

impl Refusal {
    fn new(code: &'static str, error: impl Into<String>) -> Self {
        Refusal {
            code,
            error: error.into(),
        }
    }

    fn result(self) -> EffectResult {
        EffectResult::AiFailed {
            code: self.code.into(),
            error: self.error,
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "the assistant could not read or write the database");
        Refusal::new("failed", "the database failed")
    }
}

/// The user's turn, ready for the model.
struct Question {
    parts: Vec<Part>,
    /// A voice note's transcript.
    heard: Option<String>,
    vision: bool,
}

impl Assistant {
    pub fn new(
        store: Store,
        bots: Arc<crate::bots::Directory>,
        files: Arc<Files>,
        settings: Arc<Settings>,
    ) -> Assistant {
        let a = &settings.assistant;
        let http = confab_channels::http_client(
            a.ai.as_ref()
                .map_or(std::time::Duration::from_secs(60), |c| c.request_timeout),
        );
        Assistant {
            client: a.ai.clone().map(|c| AiClient::new(c, http)),
            bots,
            files,
            store,
            settings,
        }
    }

    pub fn configured(&self) -> bool {
        self.client.is_some()
    }

    /// The answer to `request` for the run, or why there is none, with the
    /// calls made (model, tokens, latency, error) for the caller to record
    /// on the message in the transaction that moves the run.
    pub async fn answer(
        &self,
        who: &Asker,
        request: &Request,
        message_id: Option<i64>,
    ) -> (EffectResult, Vec<NewAiCall>) {
        let mut calls = Vec::new();
        let result = self.ask(who, request, message_id, &mut calls).await;
        (result, calls)
    }

    async fn ask(
        &self,
        who: &Asker,
        request: &Request,
        message_id: Option<i64>,
        calls: &mut Vec<NewAiCall>,
    ) -> EffectResult {
        let Request::Ai {
            system,
            prompt,
            history,
            media,
            model,
            temperature,
            max_tokens,
            schema,
        } = request
        else {
            return EffectResult::Failed {
                error: "not an AI request".into(),
            };
        };
        let Some(client) = &self.client else {
            tracing::warn!(
                flow = %who.flow_id,
                "an ai node ran but no AI provider is configured: set OPENAI_API_KEY or OPENAI_BASE_URL"
            );
            return Refusal::new("not_configured", "no AI provider is configured").result();
        };
        let message = match self.message(who.contact_id, message_id).await {
            Ok(m) => m,
            Err(e) => return Refusal::from(e).result(),
        };
        let question = match self
            .question(
                client,
                who,
                message.as_ref(),
                prompt.as_deref(),
                *media,
                calls,
            )
            .await
        {
            Ok(q) => q,
            Err(r) => {
                self.record(
                    calls,
                    who,
                    message.as_ref(),
                    "chat",
                    "",
                    0,
                    0,
                    0,
                    Some(&r.error),
                );
                return r.result();
            }
        };
        let bot = self
            .bots
            .by_id(who.bot_id)
            .map(|b| b.ai.clone())
            .unwrap_or_default();
        let mut messages = vec![ChatMessage::text(
            Role::System,
            system
                .clone()
                .or(bot.system_prompt)
                .unwrap_or_else(|| self.settings.assistant.system_prompt.clone()),
        )];
        let keep = history
            .or(bot.history)
            .unwrap_or(self.settings.assistant.history);
        match self.history(who.contact_id, message.as_ref(), keep).await {
            Ok(h) => messages.extend(h),
            Err(e) => return Refusal::from(e).result(),
        }
        messages.push(ChatMessage {
            role: Role::User,
            parts: question.parts,
        });
        let cfg = client.config();
        let model = model.clone().unwrap_or_else(|| {
            if question.vision {
                bot.vision_model.unwrap_or_else(|| cfg.vision_model.clone())
            } else {
                bot.model.unwrap_or_else(|| cfg.chat_model.clone())
            }
        });
        let req = ChatRequest {
            model: model.clone(),
            messages,
            temperature: *temperature,
            max_tokens: *max_tokens,
            json_schema: schema.clone().map(|schema| JsonSchemaFormat {
                name: "extraction".into(),
                schema,
            }),
        };
        let purpose = if question.vision { "vision" } else { "chat" };
        let started = std::time::Instant::now();
        match client.chat(&req).await {
            Ok(a) => {
                self.record(
                    calls,
                    who,
                    message.as_ref(),
                    purpose,
                    &a.model,
                    i64::from(a.prompt_tokens),
                    i64::from(a.completion_tokens),
                    a.latency_ms as i64,
                    None,
                );
                EffectResult::Ai {
                    text: a.text,
                    heard: question.heard,
                }
            }
            Err(e) => {
                tracing::warn!(flow = %who.flow_id, error = %e, "the AI provider failed");
                let error = e.to_string();
                self.record(
                    calls,
                    who,
                    message.as_ref(),
                    purpose,
                    &model,
                    0,
                    0,
                    started.elapsed().as_millis() as i64,
                    Some(&error),
                );
                Refusal::new("failed", error).result()
            }
        }
    }

    /// The message the run answers: the one that moved it, or the
    /// contact's latest when none did (a timer, an operator).
    async fn message(
        &self,
        contact_id: i64,
        message_id: Option<i64>,
    ) -> Result<Option<Message>, StoreError> {
        if let Some(id) = message_id {
            return self.store.message(id).await.map(Some);
        }
        Ok(self
            .store
            .messages(&MessageFilter {
                contact_id: Some(contact_id),
                direction: Some(Direction::Inbound),
                limit: 1,
                ..Default::default()
            })
            .await?
            .into_iter()
            .next())
    }

    /// The user's turn: the node's prompt or the message's text, with what
    /// its media says.
    async fn question(
        &self,
        client: &AiClient,
        who: &Asker,
        message: Option<&Message>,
        prompt: Option<&str>,
        media: bool,
        calls: &mut Vec<NewAiCall>,
    ) -> Result<Question, Refusal> {
        let text = prompt
            .map(str::to_string)
            .or_else(|| message.and_then(|m| m.text.clone()))
            .filter(|t| !t.trim().is_empty());
        let plain = |text: Option<String>| {
            text.map(|t| Question {
                parts: vec![Part::Text(t)],
                heard: None,
                vision: false,
            })
            .ok_or_else(|| Refusal::new("unsupported", "messages without text"))
        };
        let Some(m) = message else {
            return plain(text);
        };
        if !media || m.media.is_empty() {
            return match m.kind {
                MessageKind::Video => Err(Refusal::new("unsupported", "videos")),
                MessageKind::Sticker => Err(Refusal::new("unsupported", "stickers")),
                MessageKind::Location => Err(Refusal::new("unsupported", "locations")),
                MessageKind::Contacts => Err(Refusal::new("unsupported", "contact cards")),
                MessageKind::Reaction => Err(Refusal::new("unsupported", "reactions")),
                _ => plain(text.or_else(|| {
                    m.extra.reply_id.clone().filter(|_| {
                        matches!(m.kind, MessageKind::Interactive | MessageKind::Button)
                    })
                })),
            };
        }
        match m.kind {
            MessageKind::Image => {
                let (file, _) = self.fetch(m, &["image/"]).await?;
                let mut parts = vec![Part::Text(text.unwrap_or_else(|| DESCRIBE.into()))];
                parts.push(Part::Image {
                    url: confab_ai::image_data_url(&file.content_type, &file.bytes),
                });
                Ok(Question {
                    parts,
                    heard: None,
                    vision: true,
                })
            }
            MessageKind::Audio => {
                let (file, stored) = self.fetch(m, &["audio/", "video/ogg"]).await?;
                let heard = match &stored.text {
                    // Transcribed by an earlier try of this job.
                    Some(t) => t.clone(),
                    None => {
                        self.transcribe(client, who, m, &file, &stored, calls)
                            .await?
                    }
                };
                let mut turn = heard.clone();
                if let Some(p) = prompt {
                    turn = format!("{p}\n\n{heard}");
                }
                Ok(Question {
                    parts: vec![Part::Text(turn)],
                    heard: Some(heard),
                    vision: false,
                })
            }
            MessageKind::Document => {
                let media = &m.media[0];
                let is_pdf = media
                    .content_type
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case("application/pdf"))
                    || media
                        .filename
                        .as_deref()
                        .is_some_and(|f| f.to_ascii_lowercase().ends_with(".pdf"));
                if !is_pdf {
                    return Err(Refusal::new("unsupported", "documents other than PDFs"));
                }
                let (file, stored) = self.fetch(m, &["application/pdf"]).await?;
                let body = match &stored.text {
                    Some(t) => t.clone(),
                    None => {
                        let budget = self.settings.assistant.pdf_max_chars;
                        match confab_ai::pdf::extract_text(file.bytes, budget).await {
                            Ok(t) => {
                                let body = if t.truncated {
                                    format!("{}\n[the rest of the document is cut]", t.text)
                                } else {
                                    t.text
                                };
                                self.store.set_media_text(stored.id, &body).await?;
                                body
                            }
                            Err(confab_ai::pdf::PdfError::NoText) => {
                                return Err(Refusal::new("no_text", "the PDF has no text"));
                            }
                            Err(e) => return Err(Refusal::new("unreadable", e.to_string())),
                        }
                    }
                };
                let name = media
                    .filename
                    .as_deref()
                    .map(|f| format!(" named {f:?}"))
                    .unwrap_or_default();
                let ask = text.unwrap_or_else(|| SUMMARISE.into());
                Ok(Question {
                    parts: vec![Part::Text(format!(
                        "The user sent a PDF document{name}. Its text:\n\n{body}\n\n---\n{ask}"
                    ))],
                    heard: None,
                    vision: false,
                })
            }
            MessageKind::Video => Err(Refusal::new("unsupported", "videos")),
            MessageKind::Sticker => Err(Refusal::new("unsupported", "stickers")),
            _ => plain(text),
        }
    }

    async fn transcribe(
        &self,
        client: &AiClient,
        who: &Asker,
        m: &Message,
        file: &Fetched,
        stored: &StoredMedia,
        calls: &mut Vec<NewAiCall>,
    ) -> Result<String, Refusal> {
        let ext = match file.content_type.as_str() {
            "audio/mpeg" => "mp3",
            "audio/mp4" | "audio/aac" | "audio/x-m4a" => "m4a",
            "audio/wav" | "audio/x-wav" => "wav",
            "audio/webm" => "webm",
            "audio/amr" => "amr",
            _ => "ogg",
        };
        let filename = format!("voice-{}.{ext}", m.id);
        match client
            .transcribe(file.bytes.clone(), &filename, &file.content_type)
            .await
        {
            Ok(t) => {
                self.record(
                    calls,
                    who,
                    Some(m),
                    "transcription",
                    &t.model,
                    0,
                    0,
                    t.latency_ms as i64,
                    None,
                );
                if t.text.trim().is_empty() {
                    return Err(Refusal::new("not_heard", "the transcript is empty"));
                }
                self.store.set_media_text(stored.id, t.text.trim()).await?;
                Ok(t.text.trim().to_string())
            }
            Err(AiError::Empty) => Err(Refusal::new("not_heard", "the transcript is empty")),
            Err(e) => {
                let model = client.config().transcription_model.clone();
                self.record(
                    calls,
                    who,
                    Some(m),
                    "transcription",
                    &model,
                    0,
                    0,
                    0,
                    Some(&e.to_string()),
                );
                Err(Refusal::new("failed", e.to_string()))
            }
        }
    }

    /// The message's first file, from the store when an earlier try
    /// fetched it, else from the provider (then stored).
    async fn fetch(&self, m: &Message, accept: &[&str]) -> Result<(Fetched, StoredMedia), Refusal> {
        self.files.get(m, 0, accept).await.map_err(|e| match e {
            FileError::TooLarge { .. } => Refusal::new("too_large", e.to_string()),
            FileError::WrongType(_) => Refusal::new("unsupported", e.to_string()),
            FileError::Store(e) => e.into(),
            other => Refusal::new("failed", other.to_string()),
        })
    }

    /// The `keep` latest messages but `message`, oldest first, as chat turns.
    async fn history(
        &self,
        contact_id: i64,
        message: Option<&Message>,
        keep: u32,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        if keep == 0 {
            return Ok(Vec::new());
        }
        // The latest messages but the one asked about, which comes last:
        // an answer written while it waited belongs before it.
        let mut earlier = self
            .store
            .messages(&MessageFilter {
                contact_id: Some(contact_id),
                limit: i64::from(keep) + 1,
                ..Default::default()
            })
            .await?;
        earlier.retain(|m| Some(m.id) != message.map(|q| q.id));
        earlier.truncate(keep as usize);
        earlier.reverse();
        let ids: Vec<i64> = earlier.iter().map(|m| m.id).collect();
        let texts = self.store.media_texts(&ids).await?;
        Ok(earlier
            .iter()
            .filter_map(|m| {
                let (role, text) = match m.direction {
                    Direction::Inbound => {
                        let said = texts.get(&m.id).cloned();
                        let text = match (m.text.clone(), said) {
                            (Some(t), Some(s)) => Some(format!("{t}\n{s}")),
                            (t, s) => t.or(s),
                        };
                        let text = text.or_else(|| {
                            (m.kind != MessageKind::Text)
                                .then(|| format!("[sent a {}]", m.kind.as_str()))
                        })?;
                        (Role::User, text)
                    }
                    Direction::Outbound => (
                        Role::Assistant,
                        m.content.as_ref().and_then(OutboundContent::text)?,
                    ),
                };
                (!text.trim().is_empty()).then(|| ChatMessage::text(role, text))
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        calls: &mut Vec<NewAiCall>,
        who: &Asker,
        message: Option<&Message>,
        purpose: &str,
        model: &str,
        prompt_tokens: i64,
        completion_tokens: i64,
        latency_ms: i64,
        error: Option<&str>,
    ) {
        calls.push(NewAiCall {
            message_id: message.map(|m| m.id),
            run_id: Some(who.run_id),
            flow_id: who.flow_id.clone(),
            node: who.node.clone(),
            purpose: purpose.into(),
            model: if model.is_empty() {
                self.client
                    .as_ref()
                    .map(|c| c.config().chat_model.clone())
                    .unwrap_or_default()
            } else {
                model.into()
            },
            prompt_tokens,
            completion_tokens,
            latency_ms,
            error: error.map(str::to_string),
        });
    }
}
