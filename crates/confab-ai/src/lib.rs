//! Confab's AI helpers: a client for OpenAI-compatible servers (chat
//! completions with text and images, audio transcription) and local PDF text
//! extraction.
//!
//! The client speaks the OpenAI wire format only, so the same code reaches
//! OpenAI itself and local servers (llama.cpp, vLLM, Ollama, whisper servers)
//! by changing [`AiConfig::base_url`]. Nothing here stores anything; the caller
//! decides what to do with an answer or an [`AiError`].

pub mod client;
pub mod pdf;

pub use client::*;
