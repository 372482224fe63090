//! What a flow file says. These types are the flow format: YAML or JSON
//! deserializes into them, and the published JSON Schema is derived from
//! them, so the two cannot drift apart.
//!
//! Texts are minijinja templates (`Hello {{ contact.name }}`); conditions
//! and values (`when`, `set`, record fields) are minijinja expressions
//! (`answer == 'yes'`, `'DEF-' ~ now | date('%Y%m%d%H%M%S')`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A conversation flow: nodes a contact walks through, one message at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Lowercase letters, digits and underscores, e.g. `product_review`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The node a run starts at; the first node when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Words that take the contact back to the start from any step, e.g.
    /// `[menu, hi]`. `restart` always does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub menu_keywords: Vec<String>,
    /// Said to a contact who finished this flow and writes again (they can
    /// send `restart`). Without it, a finished contact starts over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_completed: Option<String>,
    /// Words that start this flow for any contact not already in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// Offered as a template (`GET /api/v1/flow-templates`) that any bot
    /// can copy under an id of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
    /// Collections this flow's records go to, declared with it as a
    /// collections file declares them: a flow made through the API brings
    /// its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<crate::collection::Collection>,
    pub nodes: Vec<Node>,
}

/// A keyword trigger: a message matching it starts the flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// How `value` is compared with the whole message (trimmed).
    #[serde(rename = "match", default)]
    pub kind: TriggerKind,
    pub value: String,
    #[serde(default)]
    pub case_sensitive: bool,
    /// Among triggers of several flows that match, the highest wins.
    #[serde(default)]
    pub priority: i32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    #[default]
    Exact,
    Contains,
    StartsWith,
    EndsWith,
    Regex,
}

/// One step of a flow. `next` names the node that follows; a node without
/// `next` (where it could have one) ends the flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    /// Send a message and go on.
    Send(SendNode),
    /// Send a question, wait for the answer, check it, store it.
    Ask(AskNode),
    /// Numbered options; the answer picks the next node.
    Menu(MenuNode),
    /// Set variables from expressions.
    Set(SetNode),
    /// Go to the first branch whose condition holds.
    Branch(BranchNode),
    /// Call an HTTP endpoint and store the response.
    Http(HttpNode),
    /// Ask the AI assistant: answer the contact, or pull data out of their message.
    Ai(AiNode),
    /// Wait (a durable timer), then go on.
    Wait(WaitNode),
    /// Store a record in a collection.
    SaveRecord(SaveRecordNode),
    /// Look up records in a collection.
    FindRecord(FindRecordNode),
    /// Change a record in a collection.
    UpdateRecord(UpdateRecordNode),
    /// Hand the contact to a person: the bot stays silent until an operator resumes it.
    Handoff(HandoffNode),
    /// Run another flow, then come back.
    Subflow(SubflowNode),
    /// End the flow.
    End(EndNode),
}

/// A message to send. Give `text`; with `media_url` it is the caption, with
/// `buttons` or `list` the body. Or give a WhatsApp `template` alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    /// Up to 3 reply buttons; shown as numbered text where a channel has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<ButtonSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonSpec {
    /// Sent back when tapped; the title when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub title: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    /// The label of the button that opens the list.
    pub button: String,
    pub sections: Vec<ListSectionSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSectionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ButtonSpec>,
}

/// A WhatsApp template: Twilio by Content SID, Meta by name and language.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
    /// Template texts, by variable number (Twilio) .
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Meta template components, as the Graph API takes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendNode {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<ButtonSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// What counts as a valid answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AnswerSpec {
    /// Any text; length counted in characters after trimming.
    Text {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_length: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_length: Option<usize>,
        /// A regular expression the whole answer must match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
    },
    Number {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        #[serde(default)]
        integer: bool,
    },
    Email,
    /// A phone number in international form; stored as E.164.
    Phone,
    /// A date as YYYY-MM-DD, DD/MM/YYYY or DD.MM.YYYY; stored as YYYY-MM-DD.
    Date,
    /// Yes or no, with the usual synonyms and any listed here; stored as a boolean.
    YesNo {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        yes: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        no: Vec<String>,
    },
    /// One of the options: its number, its value or a synonym; stored as the value.
    Choice {
        options: Vec<ChoiceOption>,
    },
    /// A media message of one of these kinds (image, audio, video, document, sticker).
    Media {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        kinds: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    pub value: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synonyms: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AskNode {
    pub id: String,
    /// The question (the message fields of `send`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<ButtonSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateSpec>,
    /// Any text when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerSpec>,
    /// The variable the checked answer is stored in.
    pub save_as: String,
    /// Said before the question is asked again, for any failure without its
    /// own text in `errors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Texts by failure: too_short, too_long, pattern, not_a_number,
    /// too_small, too_large, not_an_integer, not_an_email, not_a_phone,
    /// not_a_date, not_yes_no, not_a_choice, not_media, wrong_media.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, String>,
    /// Give up after this many invalid answers, going to `on_give_up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_give_up: Option<String>,
    /// Without an answer for this long, go to `on_timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuNode {
    pub id: String,
    /// Shown above the numbered options.
    pub text: String,
    pub options: Vec<MenuOption>,
    /// Stores the chosen option's value (its label when it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_as: Option<String>,
    /// Said before the menu is shown again after an answer that matches no option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_give_up: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuOption {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Other words that pick this option (any case).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub synonyms: Vec<String>,
    pub next: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetNode {
    pub id: String,
    /// Variable name to expression, evaluated in order.
    pub values: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchNode {
    pub id: String,
    pub branches: Vec<Branch>,
    /// Where to go when no condition holds.
    pub default: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// An expression, e.g. `wants_contact` or `answers.rating >= 4`.
    pub when: String,
    pub next: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpNode {
    pub id: String,
    /// GET, POST, PUT, PATCH or DELETE.
    #[serde(default = "default_method")]
    pub method: String,
    /// A template.
    pub url: String,
    /// Header name to template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body; its strings are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default = "default_http_timeout")]
    pub timeout_seconds: u64,
    /// Stores `{status, body}` (the body parsed as JSON when it is JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_as: Option<String>,
    /// Next node by response status, e.g. `{"404": not_found}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub on_status: BTreeMap<String, String>,
    /// Where to go when the call fails (network error, timeout, 4xx/5xx not in `on_status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// Where to go on success (2xx not in `on_status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// An AI step. The contact's latest message is the question (with its
/// image, voice note or PDF); the conversation before it comes along as
/// history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AiNode {
    pub id: String,
    /// The system prompt (a template); the server's `AI_SYSTEM_PROMPT` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The question (a template) in place of the contact's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Earlier messages sent along (both directions); the server's
    /// `MAX_CONVERSATION_HISTORY` when left out, 0 for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<u32>,
    /// What to do with an image, voice note or PDF in the message.
    #[serde(default, skip_serializing_if = "AiMedia::is_default")]
    pub media: AiMedia,
    /// The chat model, in place of the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Send the answer to the contact, or only store it. Answers are sent
    /// unless the node extracts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<bool>,
    /// Stores the answer's text, or the extracted object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_as: Option<String>,
    /// A JSON Schema (an object of string, number, integer, boolean and
    /// enum properties) the model must fill from the message. What comes
    /// back is checked against it; `on_failure` when it does not fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<serde_json::Value>,
    /// Texts for the contact by failure: `not_configured`, `failed`,
    /// `unsupported`, `too_large`, `no_text`, `not_heard`, `not_extracted`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, String>,
    /// Stay at this node after answering: every next message is answered
    /// here too (a free conversation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub converse: bool,
    /// Where to go when the AI fails or nothing could be extracted; `next` without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AiMedia {
    /// Images to the vision model, voice notes transcribed, PDFs read.
    #[default]
    Understand,
    /// Only the text (a caption) goes to the model.
    Ignore,
}

impl AiMedia {
    fn is_default(&self) -> bool {
        *self == AiMedia::Understand
    }
}

impl AiNode {
    /// Whether the answer goes to the contact.
    pub fn replies(&self) -> bool {
        self.reply.unwrap_or(self.extract.is_none())
    }
}

fn default_method() -> String {
    "GET".into()
}

fn default_http_timeout() -> u64 {
    10
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitNode {
    pub id: String,
    /// How long to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// Or until this time (an expression giving RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveRecordNode {
    pub id: String,
    pub collection: String,
    /// Field name to expression.
    pub fields: BTreeMap<String, String>,
    /// Stores the saved record (with its `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_as: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindRecordNode {
    pub id: String,
    pub collection: String,
    /// Field name to expression; records whose fields equal all of them.
    #[serde(rename = "where")]
    pub filter: BTreeMap<String, String>,
    /// Find all matching records (newest first, up to `limit`) instead of one.
    #[serde(default)]
    pub many: bool,
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Stores the record, or the list of records.
    pub save_as: String,
    /// Where to go when nothing matches; `next` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn default_limit() -> u32 {
    10
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRecordNode {
    pub id: String,
    pub collection: String,
    /// An expression giving the record's id.
    pub record: String,
    /// Field name to expression: the fields to change.
    pub fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_as: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffNode {
    pub id: String,
    /// Said to the contact as the bot steps back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Where the run goes on when an operator resumes it; it ends without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubflowNode {
    pub id: String,
    /// The id of the flow to run.
    pub flow: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndNode {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Node {
    pub fn id(&self) -> &str {
        match self {
            Node::Send(n) => &n.id,
            Node::Ask(n) => &n.id,
            Node::Menu(n) => &n.id,
            Node::Set(n) => &n.id,
            Node::Branch(n) => &n.id,
            Node::Http(n) => &n.id,
            Node::Ai(n) => &n.id,
            Node::Wait(n) => &n.id,
            Node::SaveRecord(n) => &n.id,
            Node::FindRecord(n) => &n.id,
            Node::UpdateRecord(n) => &n.id,
            Node::Handoff(n) => &n.id,
            Node::Subflow(n) => &n.id,
            Node::End(n) => &n.id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Node::Send(_) => "send",
            Node::Ask(_) => "ask",
            Node::Menu(_) => "menu",
            Node::Set(_) => "set",
            Node::Branch(_) => "branch",
            Node::Http(_) => "http",
            Node::Ai(_) => "ai",
            Node::Wait(_) => "wait",
            Node::SaveRecord(_) => "save_record",
            Node::FindRecord(_) => "find_record",
            Node::UpdateRecord(_) => "update_record",
            Node::Handoff(_) => "handoff",
            Node::Subflow(_) => "subflow",
            Node::End(_) => "end",
        }
    }

    /// Every node this one can lead to, with the field that names it.
    #[allow(clippy::needless_lifetimes)]
    pub fn successors<'a>(&'a self) -> Vec<(&'static str, &'a str)> {
        fn one<'a>(
            field: &'static str,
            target: &'a Option<String>,
        ) -> Option<(&'static str, &'a str)> {
            target.as_deref().map(|t| (field, t))
        }
        let mut out: Vec<(&'static str, &str)> = Vec::new();
        match self {
            Node::Send(n) => out.extend(one("next", &n.next)),
            Node::Ask(n) => {
                out.extend(one("next", &n.next));
                out.extend(one("on_give_up", &n.on_give_up));
                out.extend(one("on_timeout", &n.on_timeout));
            }
            Node::Menu(n) => {
                out.extend(one("on_give_up", &n.on_give_up));
                out.extend(n.options.iter().map(|o| ("options.next", o.next.as_str())));
            }
            Node::Set(n) => out.extend(one("next", &n.next)),
            Node::Branch(n) => {
                out.extend(
                    n.branches
                        .iter()
                        .map(|b| ("branches.next", b.next.as_str())),
                );
                out.push(("default", n.default.as_str()));
            }
            Node::Http(n) => {
                out.extend(one("next", &n.next));
                out.extend(one("on_failure", &n.on_failure));
                out.extend(n.on_status.values().map(|t| ("on_status", t.as_str())));
            }
            Node::Ai(n) => {
                out.extend(one("next", &n.next));
                out.extend(one("on_failure", &n.on_failure));
            }
            Node::Wait(n) => out.extend(one("next", &n.next)),
            Node::SaveRecord(n) => out.extend(one("next", &n.next)),
            Node::FindRecord(n) => {
                out.extend(one("next", &n.next));
                out.extend(one("on_missing", &n.on_missing));
            }
            Node::UpdateRecord(n) => {
                out.extend(one("next", &n.next));
                out.extend(one("on_missing", &n.on_missing));
            }
            Node::Handoff(n) => out.extend(one("next", &n.next)),
            Node::Subflow(n) => out.extend(one("next", &n.next)),
            Node::End(_) => {}
        }
        out
    }
}

macro_rules! message_of {
    ($t:ty) => {
        impl $t {
            /// The message this node sends.
            pub fn message(&self) -> MessageSpec {
                MessageSpec {
                    text: self.text.clone(),
                    media_url: self.media_url.clone(),
                    buttons: self.buttons.clone(),
                    list: self.list.clone(),
                    template: self.template.clone(),
                }
            }
        }
    };
}

// The message fields sit on the node itself (flat YAML), and serde cannot
// both flatten them and refuse unknown fields, so they are spelled out on
// both nodes that send a message and gathered here.
message_of!(SendNode);
message_of!(AskNode);

impl Flow {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id() == id)
    }

    /// The WhatsApp templates its nodes send, each with its node.
    pub fn templates(&self) -> impl Iterator<Item = (&str, &TemplateSpec)> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Send(s) => s.template.as_ref().map(|t| (s.id.as_str(), t)),
            Node::Ask(a) => a.template.as_ref().map(|t| (a.id.as_str(), t)),
            _ => None,
        })
    }

    /// The node runs start at.
    pub fn start_node(&self) -> Option<&str> {
        self.start
            .as_deref()
            .or_else(|| self.nodes.first().map(|n| n.id()))
    }
}

/// The JSON Schema of a flow file, as `confab flow schema` prints it.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Flow)).unwrap_or_default()
}
